package xmlstream_test

import (
	"fmt"

	"github.com/parley-im/parley/internal/xmlstream"
	"github.com/parley-im/parley/stanza"
)

// The session loop: feed what the transport read, drain Next until it asks
// for more, answer a stream error with <stream:error/> and close.
func Example() {
	dec := xmlstream.NewDecoder(xmlstream.DefaultLimits())
	reads := []string{
		"<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='example.com' version='1.0'>",
		"<message to='romeo@example.net' type='chat'><body>Wherefore art",
		" thou?</body></message> ",
		"<message><!-- comments are restricted --></message>",
	}
	var out []byte
	for _, r := range reads {
		if err := dec.Feed([]byte(r)); err != nil {
			fmt.Println("feed:", err)
			return
		}
		for {
			tok, ok, err := dec.Next()
			if err != nil {
				out = xmlstream.AppendElement(out[:0], stanza.AsStreamError(err).Element(), stanza.NSClient)
				out = xmlstream.AppendStreamClose(out)
				fmt.Printf("%s\n", out)
				return
			}
			if !ok {
				break // need more input: wait for the next read
			}
			switch tok.Kind {
			case xmlstream.KindStreamOpen:
				fmt.Println(tok.Kind, tok.Header.To, tok.Header.NS)
			case xmlstream.KindElement:
				fmt.Println(tok.Kind, tok.Element.Name, tok.Element.ChildText("body", stanza.NSClient))
			case xmlstream.KindStreamClose:
				fmt.Println(tok.Kind)
			}
		}
	}
	// Output:
	// StreamOpen example.com jabber:client
	// Element message Wherefore art thou?
	// <stream:error><restricted-xml xmlns='urn:ietf:params:xml:ns:xmpp-streams'/><text xmlns='urn:ietf:params:xml:ns:xmpp-streams' xml:lang='en'>comments and DTDs are not allowed</text></stream:error></stream:stream>
}
