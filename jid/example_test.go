package jid_test

import (
	"errors"
	"fmt"

	"github.com/parley-im/parley/jid"
)

func ExampleParse() {
	j, err := jid.Parse("Juliet@Example.COM/Balcony")
	if err != nil {
		panic(err)
	}
	fmt.Println(j)
	fmt.Println(j.Local(), j.Domain(), j.Resource())
	fmt.Println(j.Bare())

	_, err = jid.Parse("juliet@example.com/")
	fmt.Println(errors.Is(err, jid.ErrMalformed))
	// Output:
	// juliet@example.com/Balcony
	// juliet example.com Balcony
	// juliet@example.com
	// true
}

func ExampleJID_DomainASCII() {
	j := jid.MustParse("juliet@xn--mnchen-3ya.de")
	fmt.Println(j.Domain())
	fmt.Println(j.DomainASCII())
	// Output:
	// münchen.de
	// xn--mnchen-3ya.de
}

func ExampleNickname() {
	n, err := jid.Nickname("  Ｊｕｌｉｅｔ   Capulet ")
	if err != nil {
		panic(err)
	}
	fmt.Printf("%q\n", n)
	// Output:
	// "Juliet Capulet"
}
