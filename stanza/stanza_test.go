package stanza

import (
	"errors"
	"fmt"
	"testing"
)

func TestErrorReply(t *testing.T) {
	msg := New("message", NSClient).SetAttr("from", "a@x/r").SetAttr("to", "b@x").SetAttr("id", "m1").SetAttr("type", "chat").
		Append(New("body", NSClient).AppendText("hi"))
	r := ErrorReply(msg, ErrServiceUnavailable)
	if r.To() != "a@x/r" || r.From() != "b@x" || r.ID() != "m1" || r.Type() != "error" {
		t.Fatalf("addressing: to=%q from=%q id=%q type=%q", r.To(), r.From(), r.ID(), r.Type())
	}
	if r.ChildText("body", NSClient) != "hi" {
		t.Error("the original payload is not kept")
	}
	e := ParseError(r)
	if e == nil || e.Condition != "service-unavailable" || e.Type != ErrTypeCancel {
		t.Fatalf("ParseError = %+v", e)
	}
	if ErrorReply(r, ErrBadRequest) != nil {
		t.Error("an error stanza was answered with another error")
	}
	// An iq result is not echoed back inside an error.
	res := New("iq", NSClient).SetAttr("type", "result").SetAttr("id", "q").Append(New("query", "x"))
	if got := ErrorReply(res, ErrBadRequest); got.Child("query", "x") != nil {
		t.Error("a result's payload was copied into its error")
	}
}

func TestAsErrors(t *testing.T) {
	wrapped := fmt.Errorf("ctx: %w", ErrItemNotFound)
	if AsError(wrapped) != ErrItemNotFound {
		t.Error("AsError does not unwrap")
	}
	if AsError(errors.New("boom")) != ErrInternalServerError {
		t.Error("unknown errors must become internal-server-error")
	}
	if AsStreamError(errors.New("boom")).Condition != StreamInternalServerError {
		t.Error("unknown errors must become internal-server-error stream errors")
	}
	se := NewStreamError(StreamConflict, "replaced")
	el := se.Element()
	if el.Child(StreamConflict, NSStreams) == nil || el.ChildText("text", NSStreams) != "replaced" {
		t.Errorf("stream error element: %+v", el)
	}
}

func TestCopiesAreIndependent(t *testing.T) {
	orig := New("message", NSClient).SetAttr("to", "b@x").Append(New("body", NSClient).AppendText("hi"))
	deep := orig.Copy()
	deep.Children[0].Children[0].Text = "changed"
	deep.SetAttr("to", "c@x")
	if orig.ChildText("body", NSClient) != "hi" || orig.To() != "b@x" {
		t.Error("Copy shares state with the original")
	}
	shallow := orig.ShallowCopy()
	shallow.SetAttr("to", "d@x")
	shallow.Append(New("extra", "y"))
	if orig.To() != "b@x" || len(orig.Children) != 1 {
		t.Error("ShallowCopy's attribute or child list changes reached the original")
	}
}

func TestAttrsAndText(t *testing.T) {
	e := New("x", "ns").SetAttr("a", "1").SetAttr("b", "2").SetAttr("a", "")
	if e.HasAttr("a") || e.Attr("b") != "2" {
		t.Errorf("SetAttr with empty value must remove: %+v", e.Attrs)
	}
	e.AppendText("one ").Append(New("br", "ns")).AppendText("two")
	if got := e.TextContent(); got != "one two" {
		t.Errorf("TextContent = %q", got)
	}
	if len(e.Elements()) != 1 {
		t.Errorf("Elements = %d, want 1", len(e.Elements()))
	}
	e.RemoveChildren("br", "ns")
	if len(e.Elements()) != 0 {
		t.Error("RemoveChildren left the child")
	}
}
