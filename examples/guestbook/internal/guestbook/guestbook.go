// Package guestbook holds the example's domain types and the rules a new
// entry must follow. Both services use it: the api to validate and encode,
// the web front end to decode what the api sends. It imports no database
// code, so the web binary does not link the PostgreSQL driver.
package guestbook

import (
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Limits on a new entry, in characters (runes) after trimming.
const (
	MaxAuthor  = 60
	MaxMessage = 500
)

// Entry is one message in the guestbook.
type Entry struct {
	ID        int64     `json:"id"`
	Author    string    `json:"author"`
	Message   string    `json:"message"`
	CreatedAt time.Time `json:"created_at"`
}

// NewEntry is what a client sends to create an entry.
type NewEntry struct {
	Author  string `json:"author"`
	Message string `json:"message"`
}

// Info is what GET /api/info answers: facts that prove which sandbox, and
// which database, served the request. Database and ServerVersion come from
// PostgreSQL itself (current_database() and version()).
type Info struct {
	Sandbox       string `json:"sandbox"`
	Database      string `json:"database"`
	ServerVersion string `json:"server_version"`
	Entries       int64  `json:"entries"`
}

// ShortVersion returns the first two words of a version() string
// ("PostgreSQL 15.8"), or the whole string when it is shorter.
func (i Info) ShortVersion() string {
	f := strings.Fields(i.ServerVersion)
	if len(f) < 2 {
		return i.ServerVersion
	}
	return f[0] + " " + f[1]
}

// ValidationError says why a new entry was refused, in words meant for the
// person who wrote it.
type ValidationError struct {
	Field  string
	Reason string
}

func (e *ValidationError) Error() string { return e.Field + " " + e.Reason }

// Normalize trims both fields, turns CRLF into LF and checks the limits.
// It returns the entry to store, or a *ValidationError.
func (n NewEntry) Normalize() (NewEntry, error) {
	author := strings.TrimSpace(n.Author)
	message := strings.TrimSpace(strings.ReplaceAll(n.Message, "\r\n", "\n"))
	if err := check("author", author, MaxAuthor, false); err != nil {
		return NewEntry{}, err
	}
	if err := check("message", message, MaxMessage, true); err != nil {
		return NewEntry{}, err
	}
	return NewEntry{Author: author, Message: message}, nil
}

func check(field, s string, max int, multiline bool) error {
	if s == "" {
		return &ValidationError{field, "is required"}
	}
	if !utf8.ValidString(s) {
		return &ValidationError{field, "is not valid UTF-8 text"}
	}
	if n := utf8.RuneCountInString(s); n > max {
		return &ValidationError{field, fmt.Sprintf("is too long: %d characters, at most %d", n, max)}
	}
	for _, r := range s {
		switch {
		case r == '\t':
		case r == '\n':
			if !multiline {
				return &ValidationError{field, "must be a single line"}
			}
		case unicode.IsControl(r):
			return &ValidationError{field, fmt.Sprintf("contains the control character %U", r)}
		}
	}
	return nil
}
