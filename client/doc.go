// Package client is Parley's Go client library: it connects to an XMPP
// server, authenticates, binds a resource and then sends and receives
// stanzas as stanza.Element trees.
//
// For now it speaks XML over TCP, secured with STARTTLS (RFC 6120 §5) or
// direct TLS (XEP-0368), and authenticates with SCRAM (SCRAM-SHA-256
// preferred, with channel binding when the server offers -PLUS) or PLAIN
// over TLS. It never sends credentials over an unencrypted connection
// unless Config.AllowPlaintext says so.
//
// A minimal session:
//
//	c, err := client.Dial(ctx, client.Config{
//		Addr:                "chat.example.org:5222",
//		JID:                 "alice@example.org",
//		Password:            password,
//		SendInitialPresence: true,
//	})
//	if err != nil {
//		return err // an *AuthError for a wrong password
//	}
//	defer c.Close()
//	if err := c.SendMessage("bob@example.org", "hi"); err != nil {
//		return err
//	}
//	for el := range c.Incoming() {
//		if el.Name == "message" {
//			fmt.Println(el.From(), el.ChildText("body", stanza.NSClient))
//		}
//	}
//	return c.Err() // why the stream ended, e.g. a *stanza.StreamError
//
// Stanzas are read by one goroutine per Client and delivered in order on
// Incoming; requests that expect an answer go through IQ, which matches
// the reply by id. See Client for how the two interact.
package client
