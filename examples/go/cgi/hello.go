//go:build ignore

// A CGI script: headers, an empty line, then the body.
// Run: go build hello.go && websocketd --port=8080 --cgidir=. and open
// http://localhost:8080/hello?name=you
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Print("Content-Type: text/plain; charset=utf-8\r\n\r\n")
	fmt.Print("Hello from a CGI script in Go!\n")
	fmt.Printf("REQUEST_METHOD=%s\n", os.Getenv("REQUEST_METHOD"))
	fmt.Printf("QUERY_STRING=%s\n", os.Getenv("QUERY_STRING"))
}
