//go:build ignore

// Answers every line it reads with "Hello, LINE!" until end of input.
// Run: go build greeter.go && websocketd --port=8080 ./greeter
package main

import (
	"bufio"
	"fmt"
	"os"
	"strings"
)

func main() {
	in := bufio.NewReader(os.Stdin)
	for {
		line, err := in.ReadString('\n')
		if line != "" {
			fmt.Printf("Hello, %s!\n", strings.TrimSuffix(line, "\n"))
		}
		if err != nil {
			return // end of input: the client is gone
		}
	}
}
