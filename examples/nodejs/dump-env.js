#!/usr/bin/env node
// Prints its environment as NAME=value lines sorted by name. Run: websocketd --port=8080 ./dump-env.js
const names = Object.keys(process.env).sort();
for (const name of names) {
  console.log(`${name}=${process.env[name]}`);
}
