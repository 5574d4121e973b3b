package pebble

import (
	"context"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/parley-im/parley/internal/store"
)

// lockUser takes the stripe lock that owns the user's account, roster and
// vCard keys; see Store.users.
func (s *Store) lockUser(user string) func() {
	m := &s.users[s.stripe(user)]
	m.Lock()
	return m.Unlock
}

// CreateAccount implements store.Accounts.
func (s *Store) CreateAccount(ctx context.Context, a store.Account) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := validName("username", a.Username); err != nil {
		return err
	}
	db, err := s.enter()
	if err != nil {
		return err
	}
	defer s.mu.RUnlock()
	defer s.lockUser(a.Username)()
	key := pointKey(tagAccount, a.Username)
	if _, ok, err := get(db, key); err != nil {
		return fmt.Errorf("pebble store: create account %q: %w", a.Username, err)
	} else if ok {
		return fmt.Errorf("create account %q: %w", a.Username, store.ErrExists)
	}
	if err := db.Set(key, encodeAccount(a), s.syncWrites); err != nil {
		return fmt.Errorf("pebble store: create account %q: %w", a.Username, err)
	}
	return nil
}

// GetAccount implements store.Accounts.
func (s *Store) GetAccount(ctx context.Context, username string) (store.Account, error) {
	if err := ctx.Err(); err != nil {
		return store.Account{}, err
	}
	if err := validName("username", username); err != nil {
		return store.Account{}, err
	}
	db, err := s.enter()
	if err != nil {
		return store.Account{}, err
	}
	defer s.mu.RUnlock()
	return getAccount(db, username)
}

func getAccount(r pebble.Reader, username string) (store.Account, error) {
	v, ok, err := get(r, pointKey(tagAccount, username))
	if err != nil {
		return store.Account{}, fmt.Errorf("pebble store: get account %q: %w", username, err)
	}
	if !ok {
		return store.Account{}, fmt.Errorf("account %q: %w", username, store.ErrNotFound)
	}
	a, err := decodeAccount(username, v)
	if err != nil {
		return store.Account{}, fmt.Errorf("pebble store: %w", err)
	}
	return a, nil
}

// SetCredentials implements store.Accounts; ErrNotFound if there is no
// such account.
func (s *Store) SetCredentials(ctx context.Context, username string, sha1, sha256 store.SCRAM) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := validName("username", username); err != nil {
		return err
	}
	db, err := s.enter()
	if err != nil {
		return err
	}
	defer s.mu.RUnlock()
	defer s.lockUser(username)()
	a, err := getAccount(db, username)
	if err != nil {
		return err
	}
	a.SHA1, a.SHA256 = sha1, sha256
	if err := db.Set(pointKey(tagAccount, username), encodeAccount(a), s.syncWrites); err != nil {
		return fmt.Errorf("pebble store: set credentials of %q: %w", username, err)
	}
	return nil
}

// DeleteAccount implements store.Accounts: the account, roster, roster
// version, queue (with its high-water mark) and vCard go in one batch.
func (s *Store) DeleteAccount(ctx context.Context, username string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := validName("username", username); err != nil {
		return err
	}
	db, err := s.enter()
	if err != nil {
		return err
	}
	defer s.mu.RUnlock()
	defer s.lockUser(username)()
	if _, ok, err := get(db, pointKey(tagAccount, username)); err != nil {
		return fmt.Errorf("pebble store: delete account %q: %w", username, err)
	} else if !ok {
		return fmt.Errorf("delete account %q: %w", username, store.ErrNotFound)
	}

	// The archive goes by range deletion in the batch below; first the
	// copies in other archives that share its stanzas get their own.
	endArchive, err := s.beginArchiveDeletion(db, username)
	if err != nil {
		return err
	}
	defer endArchive()

	// Hold the queue stripe across the commit and let reservations made
	// before it finish first: an Enqueue committing after the range delete
	// would leave an orphan item, and one reserving after it would take a
	// seq from the state we are about to drop.
	q := &s.queues[s.stripe(username)]
	q.mu.Lock()
	defer q.mu.Unlock()
	if st := q.users[username]; st != nil && len(st.inflight) > 0 {
		st.draining = true
		for len(st.inflight) > 0 {
			q.waiters++
			q.cond.Wait()
			q.waiters--
		}
	}
	defer func() {
		delete(q.users, username)
		if q.waiters > 0 {
			q.cond.Broadcast() // enqueuers waiting for the drain reload the state
		}
	}()

	// The user's queue items leave the store-wide count with the account.
	qst, err := loadQueueState(db, username)
	if err != nil {
		return fmt.Errorf("pebble store: delete account %q: %w", username, err)
	}
	// Hot items go too. The drop record is durable before the range
	// delete commits: replayed after it, the journal would otherwise
	// resurrect them into the deleted account's queue.
	if s.journal != nil {
		if st := q.users[username]; st != nil {
			qst.count += len(st.hot)
			st.hot = nil
		}
		if err := s.journal.commit(s.journal.drop(username), s.journal.fsync); err != nil {
			return fmt.Errorf("pebble store: delete account %q: %w", username, err)
		}
	}
	b := db.NewBatch()
	defer b.Close()
	rlo, rhi := userPrefix(tagRoster, username)
	qlo, qhi := userPrefix(tagQueue, username)
	for _, err := range []error{
		b.Delete(pointKey(tagAccount, username), nil),
		b.DeleteRange(rlo, rhi, nil),
		b.Delete(pointKey(tagRosterVer, username), nil),
		b.DeleteRange(qlo, qhi, nil),
		b.Delete(pointKey(tagQueueHigh, username), nil),
		b.Delete(pointKey(tagVCard, username), nil),
		deleteBlocklistBatch(b, username),
		s.deletePubSubBatch(b, username),
		s.deleteArchiveBatch(b, username),
	} {
		if err != nil {
			return fmt.Errorf("pebble store: delete account %q: %w", username, err)
		}
	}
	if err := b.Commit(s.syncWrites); err != nil {
		return fmt.Errorf("pebble store: delete account %q: %w", username, err)
	}
	s.queued.Add(-int64(qst.count))
	return nil
}

// ListAccounts implements store.Accounts. Order is byte order of the
// usernames; limit <= 0 means no limit.
func (s *Store) ListAccounts(ctx context.Context, after string, limit int) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	db, err := s.enter()
	if err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	lo := []byte(tagAccount)
	if after != "" {
		// after+"\x00" is the smallest string greater than after.
		lo = append(pointKey(tagAccount, after), 0)
	}
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: prefixEnd(tagAccount)})
	if err != nil {
		return nil, fmt.Errorf("pebble store: list accounts: %w", err)
	}
	var names []string
	for ok := it.First(); ok && (limit <= 0 || len(names) < limit); ok = it.Next() {
		names = append(names, string(it.Key()[len(tagAccount):]))
		if len(names)%1024 == 0 {
			if err := ctx.Err(); err != nil {
				_ = it.Close()
				return nil, err
			}
		}
	}
	if err := it.Close(); err != nil {
		return nil, fmt.Errorf("pebble store: list accounts: %w", err)
	}
	return names, nil
}

// CountAccounts implements store.Accounts by scanning the account keys: an
// administrative operation, so a counter that every create and delete would
// have to update under one global lock is not worth it.
func (s *Store) CountAccounts(ctx context.Context) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	db, err := s.enter()
	if err != nil {
		return 0, err
	}
	defer s.mu.RUnlock()
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte(tagAccount), UpperBound: prefixEnd(tagAccount)})
	if err != nil {
		return 0, fmt.Errorf("pebble store: count accounts: %w", err)
	}
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		if n++; n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				_ = it.Close()
				return 0, err
			}
		}
	}
	if err := it.Close(); err != nil {
		return 0, fmt.Errorf("pebble store: count accounts: %w", err)
	}
	return n, nil
}
