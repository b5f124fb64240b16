//go:build ignore

// A chat room: every line a client sends goes to every client, stamped with the time (UTC).
// One copy serves the whole room:
//
//	go build chat.go && websocketd --port=8080 --broadcast --broadcastinput=lines ./chat
package main

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"time"
)

func main() {
	in := bufio.NewReader(os.Stdin)
	for {
		line, err := in.ReadString('\n')
		if line = strings.TrimSuffix(line, "\n"); line != "" {
			fmt.Printf("%s %s\n", time.Now().UTC().Format("15:04:05"), line)
		}
		if err != nil {
			return
		}
	}
}
