#!/usr/bin/env node
// Answers every line it reads with "Hello, LINE!" until end of input. Run: websocketd --port=8080 ./greeter.js
const readline = require('readline');

const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
lines.on('line', (line) => {
  console.log(`Hello, ${line}!`);
});
