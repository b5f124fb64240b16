#!/usr/bin/env ruby
# Counts from 1 to 10, one number every half second. Run: websocketd --port=8080 ./count.rb

# Die quietly (no backtrace) when websocketd ends the session and stops us.
Signal.trap('INT', 'SYSTEM_DEFAULT')
Signal.trap('PIPE', 'SYSTEM_DEFAULT')
$stdout.sync = true # flush after every write

(1..10).each do |i|
  sleep 0.5 if i > 1
  puts i
end
