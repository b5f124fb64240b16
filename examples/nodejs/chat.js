#!/usr/bin/env node
// A chat room: every line a client sends goes to every client, stamped with the time (UTC).
// One copy serves the whole room:
//   websocketd --port=8080 --broadcast --broadcastinput=lines ./chat.js
const readline = require('readline');

const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
lines.on('line', (line) => {
  if (line === '') {
    return;
  }
  const time = new Date().toISOString().slice(11, 19); // HH:MM:SS, UTC
  console.log(`${time} ${line}`);
});
