//go:build ignore

// Prints its environment as NAME=value lines sorted by name.
// Run: go build dump-env.go && websocketd --port=8080 ./dump-env
package main

import (
	"fmt"
	"os"
	"sort"
	"strings"
)

func main() {
	environ := os.Environ()
	name := func(entry string) string { return strings.SplitN(entry, "=", 2)[0] }
	sort.Slice(environ, func(i, j int) bool { return name(environ[i]) < name(environ[j]) })
	for _, entry := range environ {
		fmt.Println(entry)
	}
}
