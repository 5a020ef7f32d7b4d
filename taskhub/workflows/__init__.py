"""Workflows: chains, fan-out / fan-in, dependency graphs, parent / child and sagas, with every
piece of state in rows (WorkflowRun, task rows as steps, StepEdge) — see coordinator.py."""
