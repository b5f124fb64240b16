//go:build ignore

// Sends "tick N" every second and, at the same time, answers every line it reads with
// "echo: LINE": a goroutine does the ticking. Each Printf is one write of one line, so
// the two never mix.
// Run: go build send-receive.go && websocketd --port=8080 ./send-receive
package main

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"time"
)

func main() {
	go func() {
		ticker := time.NewTicker(time.Second)
		for n := 1; ; n++ {
			<-ticker.C
			fmt.Printf("tick %d\n", n)
		}
	}()
	in := bufio.NewReader(os.Stdin)
	for {
		line, err := in.ReadString('\n')
		if line != "" {
			fmt.Printf("echo: %s\n", strings.TrimSuffix(line, "\n"))
		}
		if err != nil {
			return // end of input: the client is gone
		}
	}
}
