from taskhub.definitions.retry import Exponential, Linear, Schedule, policy_from_config


def test_schedule_uses_its_delays_in_order_and_repeats_the_last():
    policy = Schedule([1, 5, 15, 60])
    assert [policy.delay(n) for n in range(1, 7)] == [1, 5, 15, 60, 60, 60]


def test_exponential_doubles_from_its_base_and_stops_at_its_cap():
    policy = Exponential(base=2, cap=60)
    assert [policy.delay(n) for n in range(1, 8)] == [2, 4, 8, 16, 32, 60, 60]


def test_linear_grows_by_its_step_up_to_its_cap():
    policy = Linear(2, cap=30)
    assert [policy.delay(n) for n in (1, 2, 3, 15, 16, 40)] == [2, 4, 6, 30, 30, 30]


def test_policies_can_be_built_from_settings():
    assert policy_from_config([1, 2]) == Schedule([1, 2])
    assert policy_from_config({"kind": "exponential", "base": 3, "cap": 10}).delay(2) == 9
    assert policy_from_config({"kind": "linear", "step": 1, "cap": 3}).delay(5) == 3


def test_exponential_can_start_at_a_given_delay_and_double():
    # BullMQ's exponential backoff: delay × 2^(attempt-1), here "start at 3 s, doubling"
    policy = Exponential(initial=3, cap=20)
    assert [policy.delay(n) for n in range(1, 6)] == [3, 6, 12, 20, 20]
    assert [Exponential(initial=1, base=3).delay(n) for n in (1, 2, 3)] == [1, 3, 9]
    assert policy_from_config({"kind": "exponential", "initial": 2}).delay(3) == 8


def test_exponential_refuses_values_that_make_no_schedule():
    import pytest

    for bad in ({"initial": -1}, {"base": 0.5}, {"jitter": 1.5}, {"cap": -1}):
        with pytest.raises(ValueError):
            Exponential(**bad)
