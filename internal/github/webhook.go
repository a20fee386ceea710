package github

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// SignatureHeader carries a delivery's HMAC-SHA256 signature,
// "sha256=<hex>", keyed with the webhook's secret over the raw body.
const SignatureHeader = "X-Hub-Signature-256"

// EventHeader names a delivery's event ("pull_request", "push", ...).
const EventHeader = "X-GitHub-Event"

// Sign returns the X-Hub-Signature-256 value of body under secret.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// ValidSignature reports whether header is body's signature under secret,
// comparing in constant time. An empty secret validates nothing.
func ValidSignature(secret, body []byte, header string) bool {
	if len(secret) == 0 {
		return false
	}
	hexSum, ok := strings.CutPrefix(strings.TrimSpace(header), "sha256=")
	if !ok {
		return false
	}
	got, err := hex.DecodeString(hexSum)
	if err != nil {
		return false
	}
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return hmac.Equal(got, m.Sum(nil))
}

// Event is the part of a webhook delivery Sandpit reads; the field names
// and nesting are GitHub's (pull_request, push, delete and ping events
// all carry "repository").
type Event struct {
	Action      string       `json:"action"`
	Number      int          `json:"number"`
	PullRequest *PullRequest `json:"pull_request"`
	Repository  *Repository  `json:"repository"`
	// Ref is the pushed ref ("refs/heads/main") of a push, the deleted
	// ref's short name of a delete.
	Ref     string `json:"ref"`
	RefType string `json:"ref_type"`
	After   string `json:"after"`
	Deleted bool   `json:"deleted"`
	Zen     string `json:"zen"`
}

// ParseEvent decodes the payload of a delivery of event: the body itself
// (content type application/json), or its "payload" field
// (application/x-www-form-urlencoded). It refuses a payload without a
// repository full name, and a pull_request event whose pull request has
// no positive number or a number other than the event's: such a payload
// is not one GitHub sends, and nothing of it must reach gitsync.
func ParseEvent(event, contentType string, body []byte) (*Event, error) {
	payload := body
	if strings.HasPrefix(contentType, "application/x-www-form-urlencoded") {
		q, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, fmt.Errorf("decode the form-encoded delivery: %w", err)
		}
		payload = []byte(q.Get("payload"))
	}
	var ev Event
	if err := json.Unmarshal(payload, &ev); err != nil {
		return nil, fmt.Errorf("decode the delivery's JSON payload: %w", err)
	}
	if ev.Repository == nil || ev.Repository.FullName == "" {
		return nil, errors.New("the delivery names no repository (repository.full_name)")
	}
	if event == "pull_request" && ev.PullRequest != nil {
		if ev.PullRequest.Number <= 0 {
			return nil, fmt.Errorf("the delivery's pull request has no valid number (%d)", ev.PullRequest.Number)
		}
		if ev.Number != 0 && ev.Number != ev.PullRequest.Number {
			return nil, fmt.Errorf("the delivery's number %d is not its pull request's (%d)", ev.Number, ev.PullRequest.Number)
		}
	}
	return &ev, nil
}

// Repository is a webhook's or a pull request head's repository.
type Repository struct {
	FullName string `json:"full_name"` // "owner/name"
	CloneURL string `json:"clone_url"`
	SSHURL   string `json:"ssh_url"`
	GitURL   string `json:"git_url"`
	HTMLURL  string `json:"html_url"`
	Fork     bool   `json:"fork"`
}

// PullRequest is a pull request as webhooks and the REST API's pulls
// listing both describe it.
type PullRequest struct {
	Number int    `json:"number"`
	State  string `json:"state"` // "open" or "closed"
	Title  string `json:"title"`
	// HTMLURL is the pull request's page.
	HTMLURL string  `json:"html_url"`
	User    User    `json:"user"`
	Labels  []Label `json:"labels"`
	Head    Ref     `json:"head"`
	Base    Ref     `json:"base"`
}

// User is a GitHub account.
type User struct {
	Login string `json:"login"`
}

// Label is a pull request's label.
type Label struct {
	Name string `json:"name"`
}

// Ref is a pull request's head or base: a branch of a repository (Repo is
// nil when the head's repository was deleted).
type Ref struct {
	Ref  string      `json:"ref"`
	SHA  string      `json:"sha"`
	Repo *Repository `json:"repo"`
}

// HasLabel reports whether the pull request carries any of labels.
func (pr *PullRequest) HasLabel(labels []string) bool {
	for _, l := range pr.Labels {
		for _, want := range labels {
			if l.Name == want {
				return true
			}
		}
	}
	return false
}

// Fork reports whether the pull request's head lives in another
// repository than its base (a fork, or a deleted one).
func (pr *PullRequest) Fork() bool {
	if pr.Head.Repo == nil {
		return true
	}
	if pr.Base.Repo == nil {
		return pr.Head.Repo.Fork
	}
	return !strings.EqualFold(pr.Head.Repo.FullName, pr.Base.Repo.FullName)
}
