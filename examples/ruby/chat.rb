#!/usr/bin/env ruby
# A chat room: every line a client sends goes to every client, stamped with the time (UTC).
# One copy serves the whole room:
#   websocketd --port=8080 --broadcast --broadcastinput=lines ./chat.rb

# Die quietly (no backtrace) when websocketd ends the session and stops us.
Signal.trap('INT', 'SYSTEM_DEFAULT')
Signal.trap('PIPE', 'SYSTEM_DEFAULT')
$stdout.sync = true # flush after every write
$stdin.binmode
$stdout.binmode

$stdin.each_line do |line|
  line = line.chomp("\n")
  next if line.empty?
  $stdout.write("#{Time.now.utc.strftime('%H:%M:%S')} #{line}\n")
end
