package tfstate

import (
	"bytes"
	"crypto/md5" //nolint:gosec // Content-MD5 is the integrity header Terraform's http backend sends and checks.
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/google/uuid"

	"github.com/shardform/shardform/domain"
)

// Target is the state a request names: a provision request's
// (/{provision_id}) or a custom one (/custom/{name}).
type Target struct {
	ProvisionID uuid.UUID
	CustomName  string
}

// Path is the target's path relative to the handler's mount point, without
// the leading slash: "<provision id>" or "custom/<name>".
func (t Target) Path() string {
	if t.CustomName != "" {
		return "custom/" + t.CustomName
	}
	return t.ProvisionID.String()
}

// matches reports whether g is a grant on t.
func (t Target) matches(g Grant) bool {
	if t.CustomName != "" {
		return !g.ProvisionID.Valid && g.Name == t.CustomName
	}
	return g.ProvisionID.Valid && g.ProvisionID.UUID == t.ProvisionID
}

// Authenticator turns a request for target into a grant on it: a missing
// or bad credential is domain.ErrUnauthenticated, a credential that may not
// see the target domain.ErrNotFound. The grant must be on target.
type Authenticator func(r *http.Request, target Target) (Grant, error)

// RunAuthenticator authenticates run credentials (HTTP Basic, from
// MintRunCredential). A credential of another state is domain.ErrNotFound,
// as a state of another organization is.
func RunAuthenticator(svc *Service) Authenticator {
	return func(r *http.Request, target Target) (Grant, error) {
		user, pass, ok := r.BasicAuth()
		if !ok {
			return Grant{}, domain.Unauthenticated("a state credential is required (HTTP Basic)")
		}
		g, err := svc.AuthenticateRun(r.Context(), user, pass)
		if err != nil {
			return Grant{}, err
		}
		if !target.matches(g) {
			return Grant{}, domain.NotFound("state")
		}
		return g, nil
	}
}

// BackendEnv is the environment that points Terraform's http backend
// (`backend "http" {}`) at target under base (the handler's URL, for
// example http://127.0.0.1:8080/v1/terraform/state) with a credential.
func BackendEnv(base string, target Target, username, password string) map[string]string {
	addr := strings.TrimRight(base, "/") + "/" + target.Path()
	return map[string]string{
		"TF_HTTP_ADDRESS":        addr,
		"TF_HTTP_LOCK_ADDRESS":   addr + "/lock",
		"TF_HTTP_UNLOCK_ADDRESS": addr + "/lock",
		"TF_HTTP_LOCK_METHOD":    http.MethodPost,
		"TF_HTTP_UNLOCK_METHOD":  http.MethodDelete,
		"TF_HTTP_USERNAME":       username,
		"TF_HTTP_PASSWORD":       password,
	}
}

// Handler serves svc as Terraform's http backend. Paths are relative to
// its mount point (strip the prefix with http.StripPrefix):
//
//	GET    /{provision_id}          the latest state (200), or 204 when none
//	POST   /{provision_id}?ID=<id>  a new version (ID: the lock held)
//	DELETE /{provision_id}          405: state is never deleted this way
//	POST   /{provision_id}/lock     lock (LOCK too); 423 + holder's LockInfo when locked
//	DELETE /{provision_id}/lock     unlock (UNLOCK too); 409 + holder's LockInfo on another ID
//
// and the same under /custom/{name}. Errors are JSON {"error": "..."}:
// 400 bad input, 401 no or bad credential, 403 a read-only grant writing,
// 404 unknown or invisible state, 405, 409 conflict, 413 too large.
func Handler(svc *Service, auth Authenticator) http.Handler {
	return &handler{svc: svc, auth: auth}
}

type handler struct {
	svc  *Service
	auth Authenticator
}

type operation int

const (
	opRead operation = iota
	opWrite
	opLock
	opUnlock
)

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	target, lockPath, err := parsePath(r.URL.Path)
	if err != nil {
		h.fail(w, r, opRead, err)
		return
	}
	var op operation
	switch {
	case !lockPath && r.Method == http.MethodGet:
		op = opRead
	case !lockPath && r.Method == http.MethodPost:
		op = opWrite
	case lockPath && (r.Method == http.MethodPost || r.Method == "LOCK"):
		op = opLock
	case lockPath && (r.Method == http.MethodDelete || r.Method == "UNLOCK"):
		op = opUnlock
	case !lockPath:
		msg := "method not allowed"
		if r.Method == http.MethodDelete {
			msg = "deleting Terraform state is not allowed"
		}
		w.Header().Set("Allow", "GET, POST")
		writeJSONError(w, http.StatusMethodNotAllowed, msg)
		return
	default:
		w.Header().Set("Allow", "POST, DELETE, LOCK, UNLOCK")
		writeJSONError(w, http.StatusMethodNotAllowed, "method not allowed")
		return
	}
	g, err := h.auth(r, target)
	if err != nil {
		h.fail(w, r, op, err)
		return
	}
	ctx := r.Context()
	switch op {
	case opRead:
		data, found, err := h.svc.Read(ctx, g)
		if err != nil {
			h.fail(w, r, op, err)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		if !found {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		sum := md5.Sum(data) //nolint:gosec // see import
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-MD5", base64.StdEncoding.EncodeToString(sum[:]))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(data)
	case opWrite:
		data, err := readBody(w, r, MaxStateSize)
		if err != nil {
			h.fail(w, r, op, err)
			return
		}
		if want := r.Header.Get("Content-MD5"); want != "" {
			sum := md5.Sum(data) //nolint:gosec // see import
			if base64.StdEncoding.EncodeToString(sum[:]) != want {
				h.fail(w, r, op, domain.Invalid("Content-MD5", "does not match the body"))
				return
			}
		}
		if err := h.svc.Write(ctx, g, r.URL.Query().Get("ID"), data); err != nil {
			h.fail(w, r, op, err)
			return
		}
		w.WriteHeader(http.StatusOK)
	case opLock, opUnlock:
		info, err := readBody(w, r, MaxLockInfoSize)
		if err != nil {
			h.fail(w, r, op, err)
			return
		}
		if op == opLock {
			err = h.svc.Lock(ctx, g, info)
		} else {
			err = h.svc.Unlock(ctx, g, info)
		}
		if err != nil {
			h.fail(w, r, op, err)
			return
		}
		w.WriteHeader(http.StatusOK)
	}
}

// parsePath splits a path into its target and whether it is the lock's.
func parsePath(path string) (Target, bool, error) {
	parts := strings.Split(strings.TrimPrefix(path, "/"), "/")
	var t Target
	lock := false
	switch {
	case len(parts) >= 2 && len(parts) <= 3 && parts[0] == "custom":
		if len(parts) == 3 {
			if parts[2] != "lock" {
				return t, false, domain.NotFound("route")
			}
			lock = true
		}
		if err := domain.DNSLabel("name", parts[1]); err != nil {
			return t, false, err
		}
		t.CustomName = parts[1]
	case len(parts) >= 1 && len(parts) <= 2 && parts[0] != "" && parts[0] != "custom":
		if len(parts) == 2 {
			if parts[1] != "lock" {
				return t, false, domain.NotFound("route")
			}
			lock = true
		}
		id, err := domain.ParseID("provision_id", parts[0])
		if err != nil {
			return t, false, err
		}
		t.ProvisionID = id
	default:
		return t, false, domain.NotFound("route")
	}
	return t, lock, nil
}

// readBody reads the request body, at most limit bytes.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, err
		}
		return nil, domain.Invalid("body", "could not be read")
	}
	return data, nil
}

// fail answers err: the one place errors become statuses.
func (h *handler) fail(w http.ResponseWriter, r *http.Request, op operation, err error) {
	var (
		locked  *LockedError
		invalid *domain.ValidationError
		public  *domain.PublicError
		tooBig  *http.MaxBytesError
	)
	switch {
	case errors.As(err, &locked):
		status := http.StatusConflict
		if op == opLock {
			status = http.StatusLocked
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write(locked.Info)
		return
	case errors.As(err, &tooBig):
		writeJSONError(w, http.StatusRequestEntityTooLarge, "body: must be at most "+mib(tooBig.Limit))
		return
	case errors.As(err, &invalid):
		writeJSONError(w, http.StatusBadRequest, invalid.Error())
		return
	}
	status := 0
	switch {
	case errors.Is(err, domain.ErrUnauthenticated):
		status = http.StatusUnauthorized
		w.Header().Set("WWW-Authenticate", `Basic realm="shardform terraform state"`)
	case errors.Is(err, domain.ErrForbidden):
		status = http.StatusForbidden
	case errors.Is(err, domain.ErrNotFound):
		status = http.StatusNotFound
	case errors.Is(err, domain.ErrConflict):
		status = http.StatusConflict
	}
	if status != 0 {
		msg := http.StatusText(status)
		if errors.As(err, &public) {
			msg = public.Message
		}
		writeJSONError(w, status, msg)
		return
	}
	h.svc.opts.Logger.ErrorContext(r.Context(), "terraform state request failed", "method", r.Method, "path", r.URL.Path, "error", err)
	writeJSONError(w, http.StatusInternalServerError, "internal error")
}

func mib(n int64) string {
	if n >= 1<<20 {
		return strconv.FormatInt(n>>20, 10) + " MiB"
	}
	return strconv.FormatInt(n>>10, 10) + " KiB"
}

func writeJSONError(w http.ResponseWriter, status int, msg string) {
	var buf bytes.Buffer
	_ = json.NewEncoder(&buf).Encode(map[string]string{"error": msg})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}
