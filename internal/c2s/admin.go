package c2s

import "time"

// AdminInfo is what the admin API shows of a session beyond the router's
// view (JID, availability, priority).
type AdminInfo struct {
	Transport string // the transport's Kind: "tcp", "starttls", "tls", "ws", …
	RemoteIP  string
	Secure    bool // TLS is active
	Detached  bool // the connection is gone; waiting for a resumption (XEP-0198)
}

// AdminInfo returns the session's details for the admin API. Read-only and
// safe from any goroutine once the session is bound: the transport, its
// kind and the TLS flag are settled during negotiation, before the router
// publishes the session.
func (s *Session) AdminInfo() AdminInfo {
	return AdminInfo{
		Transport: s.tr.Kind(),
		RemoteIP:  s.tr.RemoteIP(),
		Secure:    s.secure,
		Detached:  s.isDetached(),
	}
}

// BoundSince returns when the session bound its resource (or was resumed
// onto this connection); zero before that.
func (s *Session) BoundSince() time.Time {
	if ns := s.boundAt.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}
