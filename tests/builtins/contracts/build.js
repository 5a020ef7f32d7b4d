// Compiles TestToken.sol to TestToken.json (ABI + bytecode). Run from a folder with npm `solc`.
const solc = require('solc');
const fs = require('fs');
const src = fs.readFileSync(process.argv[2], 'utf8');
const input = {language: 'Solidity', sources: {'TestToken.sol': {content: src}},
  settings: {optimizer: {enabled: true, runs: 200}, evmVersion: 'cancun',
    outputSelection: {'*': {'*': ['abi', 'evm.bytecode.object']}}}};
const out = JSON.parse(solc.compile(JSON.stringify(input)));
if (out.errors) { for (const e of out.errors) console.error(e.formattedMessage); if (out.errors.some(e => e.severity === 'error')) process.exit(1); }
const c = out.contracts['TestToken.sol'].TestToken;
fs.writeFileSync(process.argv[3], JSON.stringify({compiler: 'solc ' + solc.version(), abi: c.abi, bytecode: '0x' + c.evm.bytecode.object}, null, 1) + '\n');
