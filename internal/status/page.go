package status

import (
	"bytes"
	"encoding/json"
	"hash/fnv"
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// pages is one rendering of both pages, with the header values that go with
// them, built once per Tick so serving is a map assignment and a copy.
type pages struct {
	states []ChannelStatus
	html   rendered // both languages, French first
	fr, en rendered // one language, for ?lang=fr and ?lang=en
	json   rendered
}

type field struct {
	key   string
	value []string
}

type rendered struct {
	body   []byte
	header []field // canonical keys; value slices at full capacity, so no one appends into them
	etag   string
}

// timeLayout is how Statuspage writes times: RFC 3339 with milliseconds.
const timeLayout = "2006-01-02T15:04:05.000Z07:00"

func (b *Board) render(now time.Time, states []ChannelStatus) *pages {
	ov := overallOf(states)
	updated := b.created
	for _, s := range states {
		if s.Since.After(updated) {
			updated = s.Since
		}
	}
	cache := "public, max-age=" + strconv.Itoa(int(b.opts.MaxAge/time.Second))
	p := &pages{states: states}
	p.json = finish(b.summary(states, ov, updated), "application/json", cache, updated)
	p.html = finish(b.page(states, ov, now), "text/html; charset=utf-8", cache, now)
	p.fr = finish(b.pageIn("fr", states, ov, now), "text/html; charset=utf-8", cache, now)
	p.en = finish(b.pageIn("en", states, ov, now), "text/html; charset=utf-8", cache, now)
	return p
}

func finish(body []byte, contentType, cacheControl string, modified time.Time) rendered {
	h := fnv.New64a()
	h.Write(body)
	etag := `"` + strconv.FormatUint(h.Sum64(), 36) + `"`
	return rendered{
		body: body,
		etag: etag,
		header: []field{
			{"Content-Type", []string{contentType}},
			{"Content-Length", []string{strconv.Itoa(len(body))}},
			{"Cache-Control", []string{cacheControl}},
			{"Etag", []string{etag}},
			{"Last-Modified", []string{modified.UTC().Format(http.TimeFormat)}},
			{"X-Content-Type-Options", []string{"nosniff"}},
		},
	}
}

// ServeHTML serves /status: the page for customers, in French and English,
// or in the one language ?lang=fr or ?lang=en asks for (a link from a page
// in that language, or the language link of the page itself).
func (b *Board) ServeHTML(w http.ResponseWriter, r *http.Request) {
	p := b.pages.Load()
	switch r.URL.Query().Get("lang") {
	case "fr":
		serve(w, r, &p.fr)
	case "en":
		serve(w, r, &p.en)
	default:
		serve(w, r, &p.html)
	}
}

// ServeJSON serves /status.json: the Statuspage summary.json for tooling.
func (b *Board) ServeJSON(w http.ResponseWriter, r *http.Request) { serve(w, r, &b.pages.Load().json) }

func serve(w http.ResponseWriter, r *http.Request, p *rendered) {
	h := w.Header()
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	for _, f := range p.header {
		h[f.key] = f.value
	}
	if inm := r.Header.Get("If-None-Match"); inm != "" && (inm == "*" || strings.Contains(inm, p.etag)) {
		delete(h, "Content-Length")
		delete(h, "Content-Type")
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(p.body)
	}
}

// The summary.json shape, fields in Statuspage's order.
type summary struct {
	Page                  summaryPage `json:"page"`
	Components            []component `json:"components"`
	Incidents             []struct{}  `json:"incidents"`
	ScheduledMaintenances []struct{}  `json:"scheduled_maintenances"`
	Status                struct {
		Indicator   string `json:"indicator"`
		Description string `json:"description"`
	} `json:"status"`
}

type summaryPage struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	URL       string `json:"url"`
	TimeZone  string `json:"time_zone"`
	UpdatedAt string `json:"updated_at"`
}

type component struct {
	ID                 string  `json:"id"`
	Name               string  `json:"name"`
	Status             string  `json:"status"`
	CreatedAt          string  `json:"created_at"`
	UpdatedAt          string  `json:"updated_at"`
	Position           int     `json:"position"`
	Description        string  `json:"description"`
	Showcase           bool    `json:"showcase"`
	StartDate          *string `json:"start_date"`
	GroupID            *string `json:"group_id"`
	PageID             string  `json:"page_id"`
	Group              bool    `json:"group"`
	OnlyShowIfDegraded bool    `json:"only_show_if_degraded"`
}

// summary renders status.json. A component's name carries both languages, as
// the HTML page does; its description says what works, in both.
func (b *Board) summary(states []ChannelStatus, ov overall, updated time.Time) []byte {
	loc := b.opts.Location
	s := summary{
		Page: summaryPage{
			ID:        b.opts.PageID,
			Name:      b.opts.Name,
			URL:       b.opts.URL,
			TimeZone:  loc.String(),
			UpdatedAt: updated.In(loc).Format(timeLayout),
		},
		Components:            make([]component, len(states)),
		Incidents:             []struct{}{},
		ScheduledMaintenances: []struct{}{},
	}
	s.Status.Indicator, s.Status.Description = ov.indicator, ov.description
	for i, st := range states {
		s.Components[i] = component{
			ID:          st.Name,
			Name:        st.TitleFR + " / " + st.TitleEN,
			Status:      displayNames[displayOf(st.Level, st.Partial)],
			CreatedAt:   b.created.In(loc).Format(timeLayout),
			UpdatedAt:   st.Since.In(loc).Format(timeLayout),
			Position:    i + 1,
			Description: st.FR + " / " + st.EN,
			PageID:      b.opts.PageID,
		}
	}
	out, err := json.Marshal(s)
	if err != nil {
		// Plain strings, ints and bools: Marshal cannot fail on them.
		panic("status: encode summary: " + err.Error())
	}
	return out
}

// pageTmpl is the whole customer page: server-rendered, no script, no
// external asset, a few lines of inline CSS, French first with English
// beside it. Colour is never the only sign: each state is also written.
var pageTmpl = template.Must(template.New("status").Parse(`<!doctype html>
<html lang="fr">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>État des services — Service status</title>
<style>body{font:1rem/1.5 system-ui,sans-serif;max-width:44rem;margin:1.5rem auto;padding:0 1rem;color:#111;background:#fff}
ul{list-style:none;padding:0}li{border-left:.4rem solid #888;padding:.25rem .75rem;margin:.75rem 0}
.operational{border-color:#1a7f37}.degraded_performance{border-color:#9a6700}.partial_outage{border-color:#bc4c00}.major_outage{border-color:#cf222e}
h2{font-size:1.05rem;margin:0}p{margin:.2rem 0}.en{color:#444}</style>
</head>
<body>
<main>
<h1>État des services <span lang="en" class="en">/ Service status</span></h1>
<p class="{{.Indicator}}"><strong>{{.OverallFR}}</strong> <span lang="en" class="en">{{.OverallEN}}</span></p>
<p>Vérifié le {{.CheckedFR}}. <span lang="en" class="en">Checked on {{.CheckedEN}}.</span></p>
<ul>
{{range .Channels}}<li class="{{.Status}}">
<h2>{{.TitleFR}} <span lang="en" class="en">/ {{.TitleEN}}</span></h2>
<p><strong>{{.LabelFR}}</strong> — {{.FR}}</p>
<p lang="en" class="en"><strong>{{.LabelEN}}</strong> — {{.EN}}</p>
</li>
{{end}}</ul>
<p><a href="/status.json">status.json</a></p>
</main>
</body>
</html>
`))

type pageChannel struct {
	TitleFR, TitleEN, Status, LabelFR, LabelEN, FR, EN string
}

func (b *Board) page(states []ChannelStatus, ov overall, now time.Time) []byte {
	t := now.In(b.opts.Location)
	data := struct {
		Indicator, OverallFR, OverallEN, CheckedFR, CheckedEN string
		Channels                                              []pageChannel
	}{
		Indicator: ov.indicator,
		OverallFR: ov.fr,
		OverallEN: ov.description,
		CheckedFR: t.Format("02/01/2006 à 15:04:05 MST"),
		CheckedEN: t.Format("2 Jan 2006 at 15:04:05 MST"),
	}
	for _, s := range states {
		d := displayOf(s.Level, s.Partial)
		data.Channels = append(data.Channels, pageChannel{
			TitleFR: s.TitleFR, TitleEN: s.TitleEN, Status: displayNames[d],
			LabelFR: labels[d][0], LabelEN: labels[d][1], FR: s.FR, EN: s.EN,
		})
	}
	return execute(pageTmpl, data)
}

// execute renders a page's fixed template over plain strings: this cannot
// fail, short of a mistake in the template itself.
func execute(t *template.Template, data any) []byte {
	var buf bytes.Buffer
	if err := t.Execute(&buf, data); err != nil {
		panic("status: render page: " + err.Error())
	}
	return buf.Bytes()
}

// langTmpl is the customer page in one language, with a link to the other;
// otherwise as pageTmpl.
var langTmpl = template.Must(template.New("status-lang").Parse(`<!doctype html>
<html lang="{{.Lang}}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>body{font:1rem/1.5 system-ui,sans-serif;max-width:44rem;margin:1.5rem auto;padding:0 1rem;color:#111;background:#fff}
ul{list-style:none;padding:0}li{border-left:.4rem solid #888;padding:.25rem .75rem;margin:.75rem 0}
.operational{border-color:#1a7f37}.degraded_performance{border-color:#9a6700}.partial_outage{border-color:#bc4c00}.major_outage{border-color:#cf222e}
h2{font-size:1.05rem;margin:0}p{margin:.2rem 0}</style>
</head>
<body>
<main>
<h1>{{.Title}}</h1>
<p><a href="/status?lang={{.Other}}" lang="{{.Other}}" hreflang="{{.Other}}">{{.OtherName}}</a></p>
<p class="{{.Indicator}}" id="overall"><strong>{{.Overall}}</strong></p>
<p>{{.Checked}}</p>
<ul>
{{range .Channels}}<li class="{{.Status}}" id="{{.Name}}">
<h2>{{.Title}}</h2>
<p><strong>{{.Label}}</strong> — {{.Words}}</p>
</li>
{{end}}</ul>
<p><a href="/status.json">status.json</a></p>
</main>
</body>
</html>
`))

type langChannel struct {
	Name, Title, Status, Label, Words string
}

// pageIn renders the page in lang, "fr" or "en".
func (b *Board) pageIn(lang string, states []ChannelStatus, ov overall, now time.Time) []byte {
	t := now.In(b.opts.Location)
	fr := lang == "fr"
	data := struct {
		Lang, Other, OtherName, Title, Indicator, Overall, Checked string
		Channels                                                   []langChannel
	}{Lang: "en", Other: "fr", OtherName: "Français", Title: "Service status", Indicator: ov.indicator,
		Overall: ov.description, Checked: "Checked on " + t.Format("2 Jan 2006 at 15:04:05 MST") + "."}
	if fr {
		data.Lang, data.Other, data.OtherName, data.Title = "fr", "en", "English", "État des services"
		data.Overall, data.Checked = ov.fr, "Vérifié le "+t.Format("02/01/2006 à 15:04:05 MST")+"."
	}
	for _, s := range states {
		d := displayOf(s.Level, s.Partial)
		c := langChannel{Name: s.Name, Title: s.TitleEN, Status: displayNames[d], Label: labels[d][1], Words: s.EN}
		if fr {
			c.Title, c.Label, c.Words = s.TitleFR, labels[d][0], s.FR
		}
		data.Channels = append(data.Channels, c)
	}
	return execute(langTmpl, data)
}
