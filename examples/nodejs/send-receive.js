#!/usr/bin/env node
// Sends "tick N" every second and, at the same time, answers every line it reads with
// "echo: LINE". Run: websocketd --port=8080 ./send-receive.js
// Node's event loop does both: a timer for the ticks, a line reader for the input.
const readline = require('readline');

let tick = 1;
const timer = setInterval(() => {
  console.log(`tick ${tick}`);
  tick += 1;
}, 1000);

const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
lines.on('line', (line) => {
  console.log(`echo: ${line}`);
});
lines.on('close', () => {
  clearInterval(timer); // the client is gone: let the program end
});
