package cht

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
)

// OutboundTask is one document of CHT's outbound push queue: Sentinel's task:outbound:<doc id>
// document in the medic-sentinel database. mark_for_outbound writes it when the first, immediate
// push of a document fails (cht-core shared-libs/transitions/src/transitions/mark_for_outbound.js);
// Sentinel's outbound schedule retries every push left in Queue every 5 minutes, removes a push
// once it succeeds and deletes the document when Queue is empty
// (sentinel/src/schedule/outbound.js). A task therefore stands for pushes that failed at least
// once, and Created is when the first of them failed, except for a push with a cron:
// mark_for_outbound queues it without trying when the change falls outside its window, and
// Sentinel sends it in the next window (CHT 4.5 to 4.10 drop it unsent instead at a run outside
// the window where another push is due: batch hands singlePush only the due pushes, and
// singlePush clears one without a configuration). A push removed from app_settings.outbound is never tried
// again: from CHT 4.11 Sentinel skips its entries and leaves them in Queue for good (before 4.11
// it clears them at its next run). Beware with two or more queued
// pushes: removeConfigKeyFromTask calls queue.splice(key, 1) with the push name, which JavaScript
// reads as index 0, so a success removes the first entry, not its own; when the first push is
// still failing, it is dropped and never retried (the one that succeeded stays and is removed
// next run as already sent).
type OutboundTask struct {
	ID      string   `json:"_id"`
	DocID   string   `json:"doc_id"`  // the medic document to push
	Created Millis   `json:"created"` // when the task was queued (ms)
	Queue   []string `json:"queue"`   // names of the pushes (app_settings.outbound keys) still to send
}

// outboundPage is the page size of OutboundQueue; Sentinel reads its queue in batches of 1000 too.
const outboundPage = 1000

// OutboundQueue returns every queued outbound push task, in document id order. It reads the
// medic-sentinel database (GET /medic-sentinel/_all_docs through the API, which passes it to
// CouchDB), whose members are only the sentinel role and CouchDB server admins, so the client
// must log in as a CHT administrator (a CouchDB admin); other users get an error matching
// [ErrForbidden] or [ErrUnauthorized].
func (c *Client) OutboundQueue(ctx context.Context) ([]OutboundTask, error) {
	var out []OutboundTask
	start, last := `"task:outbound:"`, ""
	for {
		q := url.Values{
			"startkey":     {start},
			"endkey":       {`"task:outbound:` + "\ufff0" + `"`},
			"include_docs": {"true"},
			"limit":        {strconv.Itoa(outboundPage)},
		}
		var page struct {
			Rows []struct {
				ID  string        `json:"id"`
				Doc *OutboundTask `json:"doc"`
			} `json:"rows"`
		}
		r := request{method: http.MethodGet, path: "/" + c.db + "-sentinel/_all_docs", query: q, retry: true}
		if _, err := c.do(ctx, r, &page); err != nil {
			return nil, fmt.Errorf("cht: read outbound queue: %w", err)
		}
		for i, row := range page.Rows {
			if i == 0 && last != "" && row.ID == last {
				continue // the previous page's last row, read again
			}
			if row.Doc != nil {
				out = append(out, *row.Doc)
			}
		}
		if len(page.Rows) < outboundPage {
			return out, nil
		}
		// Continue from the last row, which the next page starts with
		// unless Sentinel deleted it meanwhile (it deletes a task once
		// its push succeeds): skipping it by count (skip=1) would then
		// skip the row after it.
		last = page.Rows[len(page.Rows)-1].ID
		key, err := json.Marshal(last)
		if err != nil {
			return nil, fmt.Errorf("cht: read outbound queue: %w", err)
		}
		start = string(key)
	}
}
