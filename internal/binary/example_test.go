package binary_test

import (
	"fmt"

	"github.com/parley-im/parley/internal/binary"
	"github.com/parley-im/parley/stanza"
)

// A client and a server exchange their stream opens (which settle the
// dictionary version) and a stanza.
func Example() {
	srv := binary.NewCodec(binary.Options{Role: binary.Server})
	cli := binary.NewCodec(binary.Options{Role: binary.Client})

	// The client opens; the server reads the open and answers.
	_ = srv.Feed(cli.AppendOpen(nil, binary.Header{To: "example.com", Version: "1.0", NS: stanza.NSClient}))
	ev, _, _ := srv.Next()
	fmt.Println("server read open to", ev.Header.To)
	_ = cli.Feed(srv.AppendOpen(nil, binary.Header{From: "example.com", ID: "s1", Version: "1.0", NS: stanza.NSClient}))
	ev, _, _ = cli.Next()
	fmt.Println("client read open from", ev.Header.From, "dictionary", cli.Dictionary())

	// The server delivers a message; the second time its JIDs are aliased.
	msg := stanza.New("message", stanza.NSClient).
		SetAttr("from", "alice@example.com/phone").SetAttr("to", "bob@example.com").SetAttr("type", "chat").
		Append(stanza.New("body", stanza.NSClient).AppendText("hi"))
	for i := 0; i < 2; i++ {
		frame := srv.AppendElement(nil, msg)
		_ = cli.Feed(frame)
		ev, _, _ = cli.Next()
		fmt.Println(len(frame), "bytes:", ev.Element.From(), ev.Element.ChildText("body", ""))
	}
	// Output:
	// server read open to example.com
	// client read open from example.com dictionary 1
	// 31 bytes: alice@example.com/phone hi
	// 15 bytes: alice@example.com/phone hi
}
