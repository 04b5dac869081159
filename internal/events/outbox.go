package events

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// SinkProgress is a sink's place in an outbox: what the outbox stores
// (internal/state for one node, internal/pgoutbox for several) report
// for one sink's cursor.
type SinkProgress struct {
	Sink string
	// Backlog is how many events were recorded after the cursor
	// (whether or not the sink's filter wants them).
	Backlog int64
	// FailingID, Attempts, NextAttempt and LastError describe the event
	// at the head being retried; zero when the last attempt succeeded.
	FailingID   string
	Attempts    int
	NextAttempt time.Time
	LastError   string
	// LastDelivered is when the cursor last moved forward by delivery.
	LastDelivered time.Time
	// Dropped counts the events Trim skipped, over the sink's life.
	Dropped int64
}

// ErrSinkInUse is returned by a shared outbox's Forget for a sink that
// another process still delivers from: its cursor is kept. Several
// nodes running different sink lists (a rolling config change) must not
// delete each other's places in the outbox.
var ErrSinkInUse = errors.New("the sink is being delivered by another node")

// OutboxRow is an event as the outbox stores keep it: its id, type and
// time as columns, and its JSON as recorded.
type OutboxRow struct {
	ID, Type string
	Created  int64 // Unix milliseconds
	Body     []byte
}

// NewOutboxRow encodes e for an outbox; e must be stamped (have an id).
func NewOutboxRow(e Event) (OutboxRow, error) {
	if e.ID == "" {
		return OutboxRow{}, errors.New("append: event has no id (Stamp it first)")
	}
	body, err := json.Marshal(e)
	if err != nil {
		return OutboxRow{}, fmt.Errorf("append %s: %w", e.ID, err)
	}
	return OutboxRow{ID: e.ID, Type: string(e.Type), Created: e.Time.UnixMilli(), Body: body}, nil
}
