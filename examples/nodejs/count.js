#!/usr/bin/env node
// Counts from 1 to 10, one number every half second. Run: websocketd --port=8080 ./count.js
// console.log writes to a pipe at once: nothing to flush.
let i = 1;
console.log(i);
const timer = setInterval(() => {
  i += 1;
  console.log(i);
  if (i === 10) {
    clearInterval(timer);
  }
}, 500);
