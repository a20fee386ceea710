package guestbook

import (
	"errors"
	"strings"
	"testing"
)

func TestNormalize(t *testing.T) {
	ok := []struct {
		in, want NewEntry
	}{
		{NewEntry{"Ada", "Hello"}, NewEntry{"Ada", "Hello"}},
		{NewEntry{"  Ada \t", "\n Hello\r\nthere \n"}, NewEntry{"Ada", "Hello\nthere"}},
		{NewEntry{strings.Repeat("é", MaxAuthor), strings.Repeat("ü", MaxMessage)}, NewEntry{strings.Repeat("é", MaxAuthor), strings.Repeat("ü", MaxMessage)}},
		{NewEntry{"Ada", "tab\tseparated"}, NewEntry{"Ada", "tab\tseparated"}},
	}
	for _, c := range ok {
		got, err := c.in.Normalize()
		if err != nil || got != c.want {
			t.Errorf("Normalize(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}

	bad := []struct {
		in    NewEntry
		field string
		says  string
	}{
		{NewEntry{"", "Hello"}, "author", "is required"},
		{NewEntry{"   ", "Hello"}, "author", "is required"},
		{NewEntry{"Ada", " \n "}, "message", "is required"},
		{NewEntry{strings.Repeat("a", MaxAuthor+1), "Hello"}, "author", "too long: 61 characters, at most 60"},
		{NewEntry{"Ada", strings.Repeat("é", MaxMessage+1)}, "message", "too long"},
		{NewEntry{"A\nda", "Hello"}, "author", "single line"},
		{NewEntry{"Ada", "bell\a"}, "message", "control character U+0007"},
		{NewEntry{"Ada", "bad \xff utf-8"}, "message", "UTF-8"},
	}
	for _, c := range bad {
		_, err := c.in.Normalize()
		var ve *ValidationError
		if !errors.As(err, &ve) || ve.Field != c.field || !strings.Contains(err.Error(), c.says) {
			t.Errorf("Normalize(%q) error = %v; want a %s error saying %q", c.in, err, c.field, c.says)
		}
	}
}

func TestShortVersion(t *testing.T) {
	i := Info{ServerVersion: "PostgreSQL 15.8 (Debian 15.8-0+deb12u1) on x86_64-pc-linux-gnu, compiled by gcc"}
	if got := i.ShortVersion(); got != "PostgreSQL 15.8" {
		t.Errorf("ShortVersion = %q", got)
	}
	if got := (Info{ServerVersion: "odd"}).ShortVersion(); got != "odd" {
		t.Errorf("ShortVersion = %q", got)
	}
}
