package identity_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/shardform/shardform/domain"
	"github.com/shardform/shardform/identity"
	"github.com/shardform/shardform/ratelimit"
	"github.com/shardform/shardform/seal"
	"github.com/shardform/shardform/store"
	"github.com/shardform/shardform/store/storetest"
)

// TestConcurrentWrongPasswordsAreCountedBeforeTheyAreChecked: of 50 wrong
// passwords sent at once for one account, at most LoginFailures are
// evaluated (401); the rest are refused as locked (429) unchecked.
func TestConcurrentWrongPasswordsAreCountedBeforeTheyAreChecked(t *testing.T) {
	ctx := context.Background()
	st := store.NewStore(storetest.NewPool(t))
	key := bytes.Repeat([]byte{7}, seal.KeySize)
	sealer, err := seal.New(key)
	if err != nil {
		t.Fatal(err)
	}
	const failures = 5
	svc, err := identity.New(st, key, sealer, ratelimit.New(st.Pool, time.Now), time.Now, identity.Options{
		AllowRegistration: true, LoginFailures: failures, LoginAttemptsPerIP: 1000,
		Password: identity.PasswordParams{Memory: 1024, Time: 1, Threads: 1},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Bootstrap(ctx, identity.Credentials{Email: "victim@example.com", Password: "correct horse battery"}); err != nil {
		t.Fatal(err)
	}

	const attempts = 50
	results := make(chan error, attempts)
	var wg sync.WaitGroup
	for i := range attempts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := svc.Login(ctx, identity.Credentials{Email: "victim@example.com", Password: fmt.Sprintf("guess %d", i)}, fmt.Sprintf("10.0.0.%d", i))
			results <- err
		}()
	}
	wg.Wait()
	close(results)
	var evaluated, locked int
	for err := range results {
		var rl *domain.RateLimitedError
		switch {
		case errors.Is(err, domain.ErrUnauthenticated):
			evaluated++
		case errors.As(err, &rl):
			locked++
		default:
			t.Errorf("unexpected answer: %v", err)
		}
	}
	if evaluated > failures || evaluated+locked != attempts {
		t.Errorf("%d passwords evaluated and %d refused as locked; want at most %d evaluated", evaluated, locked, failures)
	}
	// The right password is refused too while the account is locked.
	var rl *domain.RateLimitedError
	if _, err := svc.Login(ctx, identity.Credentials{Email: "victim@example.com", Password: "correct horse battery"}, "10.0.1.1"); !errors.As(err, &rl) {
		t.Errorf("locked account, right password: %v", err)
	}
}

// TestARightPasswordForgivesTheAttempt: counting every attempt first must
// not lock out a user who logs in right: the count starts over.
func TestARightPasswordForgivesTheAttempt(t *testing.T) {
	ctx := context.Background()
	st := store.NewStore(storetest.NewPool(t))
	key := bytes.Repeat([]byte{7}, seal.KeySize)
	sealer, _ := seal.New(key)
	svc, err := identity.New(st, key, sealer, ratelimit.New(st.Pool, time.Now), time.Now, identity.Options{
		AllowRegistration: true, LoginFailures: 2, LoginAttemptsPerIP: 1000,
		Password: identity.PasswordParams{Memory: 1024, Time: 1, Threads: 1},
	})
	if err != nil {
		t.Fatal(err)
	}
	creds := identity.Credentials{Email: "user@example.com", Password: "correct horse battery"}
	if _, err := svc.Bootstrap(ctx, creds); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, err := svc.Login(ctx, creds, "10.0.0.1"); err != nil {
			t.Fatalf("login %d: %v", i, err)
		}
	}
}
