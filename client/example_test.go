package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/parley-im/parley/client"
	"github.com/parley-im/parley/stanza"
)

// Log in, send a message and print the messages that arrive until the
// stream ends.
func ExampleDial() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, client.Config{
		Addr:                "127.0.0.1:5222",
		JID:                 "alice@localhost",
		Password:            "secret",
		SendInitialPresence: true,
	})
	var authErr *client.AuthError
	if errors.As(err, &authErr) && authErr.Condition == "not-authorized" {
		log.Fatal("wrong user name or password")
	}
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	if err := c.SendMessage("bob@localhost", "Hello, Bob"); err != nil {
		log.Fatal(err)
	}
	for el := range c.Incoming() {
		if el.Name == "message" && el.Type() != "error" {
			fmt.Printf("%s: %s\n", el.From(), el.ChildText("body", stanza.NSClient))
		}
	}
	log.Print("stream ended: ", c.Err())
}

// Ask the server something and wait for the answer.
func ExampleClient_IQ() {
	var c *client.Client // from Dial
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ping := stanza.New("iq", stanza.NSClient).SetAttr("type", "get").SetAttr("to", "localhost").
		Append(stanza.New("ping", "urn:xmpp:ping"))
	if _, err := c.IQ(ctx, ping); err != nil {
		var se *stanza.Error
		if errors.As(err, &se) {
			log.Printf("server answered with an error: %s", se.Condition)
		}
		log.Fatal(err)
	}
}
