package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/parley-im/parley/client"
	"github.com/parley-im/parley/stanza"
)

const chatUsage = `parley chat: log in and chat from the terminal, in XML or the binary encoding.

Usage:
  parley chat --jid alice@localhost (--password P | --password-stdin) [--to bob@localhost]
              [--addr HOST:PORT] [--direct-tls] [--binary] [--ca FILE | --insecure]

Type a line to send it to the current recipient; "/to JID" changes the
recipient, "/quit" (or end of input) leaves. Incoming messages are printed
as "JID: text". --binary speaks the compact binary encoding (direct TLS
with ALPN parley-bin/1, default port 5223).
`

// chat is a small interactive client for trying the server out; it is
// built on the public client package, like any app would be.
func chat(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("chat", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, chatUsage); fs.PrintDefaults() }
	jidFlag := fs.String("jid", "", "the account to log in as (bare or full JID)")
	password := fs.String("password", "", "the password (visible in the process list: prefer --password-stdin)")
	passStdin := fs.Bool("password-stdin", false, "read the password from the first line of standard input")
	to := fs.String("to", "", "the first recipient")
	addr := fs.String("addr", "", "server HOST:PORT (default: the JID's domain on 5222, or 5223 with --direct-tls/--binary)")
	direct := fs.Bool("direct-tls", false, "direct TLS (XEP-0368) instead of STARTTLS")
	bin := fs.Bool("binary", false, "speak the binary encoding (implies --direct-tls)")
	caFile := fs.String("ca", "", "trust the server certificate in this PEM `FILE` (e.g. DATA/tls/localhost.crt)")
	insecure := fs.Bool("insecure", false, "do not verify the server certificate (testing only)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *jidFlag == "" || fs.NArg() != 0 {
		fs.Usage()
		return 2
	}
	in := bufio.NewReader(stdin)
	pw, err := readPassword(*password, *passStdin, in)
	if err != nil {
		fmt.Fprintf(stderr, "parley chat: %v\n", err)
		return 2
	}
	tlsCfg := &tls.Config{InsecureSkipVerify: *insecure}
	if *caFile != "" {
		pem, err := os.ReadFile(*caFile)
		if err != nil {
			fmt.Fprintf(stderr, "parley chat: %v\n", err)
			return 2
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			fmt.Fprintf(stderr, "parley chat: no certificate in %s\n", *caFile)
			return 2
		}
		tlsCfg.RootCAs = pool
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	c, err := client.Dial(ctx, client.Config{
		Addr: *addr, JID: *jidFlag, Password: pw, TLSConfig: tlsCfg,
		DirectTLS: *direct || *bin, Binary: *bin, SendInitialPresence: true, StreamManagement: true,
	})
	cancel()
	if err != nil {
		fmt.Fprintf(stderr, "parley chat: %v\n", err)
		return 1
	}
	enc := "XML"
	if *bin {
		enc = "binary"
	}
	fmt.Fprintf(stdout, "logged in as %s (%s encoding)\n", c.JID(), enc)

	var mu sync.Mutex // stdout is shared by the reader and the prompt
	done := make(chan struct{})
	go func() {
		defer close(done)
		for el := range c.Incoming() {
			if el.Name != "message" {
				continue
			}
			body := el.ChildText("body", stanza.NSClient)
			if body == "" {
				continue
			}
			mu.Lock()
			fmt.Fprintf(stdout, "%s: %s\n", el.From(), body)
			mu.Unlock()
		}
	}()
	rcpt := *to
	for {
		line, err := in.ReadString('\n')
		line = strings.TrimRight(line, "\r\n")
		switch {
		case line == "/quit":
			err = io.EOF
		case strings.HasPrefix(line, "/to "):
			rcpt = strings.TrimSpace(strings.TrimPrefix(line, "/to "))
		case line != "" && rcpt == "":
			mu.Lock()
			fmt.Fprintln(stderr, `no recipient: type "/to JID" first`)
			mu.Unlock()
		case line != "":
			if serr := c.SendMessage(rcpt, line); serr != nil {
				fmt.Fprintf(stderr, "parley chat: %v\n", serr)
				return 1
			}
		}
		if err != nil {
			break
		}
	}
	// Give messages in flight a moment, then leave cleanly.
	time.Sleep(200 * time.Millisecond)
	_ = c.Close()
	<-done
	return 0
}
