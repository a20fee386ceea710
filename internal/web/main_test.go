package web_test

import (
	"testing"

	"sandpit.dev/sandpit/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }
