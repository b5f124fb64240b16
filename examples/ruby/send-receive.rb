#!/usr/bin/env ruby
# Sends "tick N" every second and, at the same time, answers every line it reads with
# "echo: LINE". Run: websocketd --port=8080 ./send-receive.rb

# Die quietly (no backtrace) when websocketd ends the session and stops us.
Signal.trap('INT', 'SYSTEM_DEFAULT')
Signal.trap('PIPE', 'SYSTEM_DEFAULT')
$stdout.sync = true # flush after every write
$stdin.binmode
$stdout.binmode
lock = Mutex.new # one line at a time from either thread

Thread.new do
  n = 1
  loop do
    sleep 1
    lock.synchronize { $stdout.write("tick #{n}\n") }
    n += 1
  end
end

$stdin.each_line do |line|
  lock.synchronize { $stdout.write("echo: #{line.chomp("\n")}\n") }
end
