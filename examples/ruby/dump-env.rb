#!/usr/bin/env ruby
# Prints its environment as NAME=value lines sorted by name. Run: websocketd --port=8080 ./dump-env.rb
$stdout.sync = true # flush after every write
$stdout.binmode

ENV.keys.sort.each do |name|
  $stdout.write("#{name}=#{ENV[name]}\n")
end
