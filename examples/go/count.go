//go:build ignore

// Counts from 1 to 10, one number every half second.
// Run: go build count.go && websocketd --port=8080 ./count
// (Each program here is a file of its own: "go build FILE.go" builds it, and the build
// line above keeps "go build" without a file name from mixing them up.)
package main

import (
	"fmt"
	"time"
)

func main() {
	for i := 1; i <= 10; i++ {
		if i > 1 {
			time.Sleep(500 * time.Millisecond)
		}
		fmt.Println(i) // os.Stdout is not buffered: nothing to flush
	}
}
