package memory

import (
	"fmt"
	"hash/maphash"
	"math/rand/v2"
	"testing"
)

// TestTableAgainstMap drives the table and the deadline heap with random
// inserts and deletes and compares them with a map.
func TestTableAgainstMap(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(3, 4))
	tab := table{seed: maphash.MakeSeed()}
	var heap deadlines
	model := map[string]*entry{}
	for step := range 100_000 {
		id := fmt.Sprint(rng.IntN(5000))
		h := maphash.String(tab.seed, id)
		if e, ok := model[id]; ok && rng.IntN(2) == 0 {
			if !tab.del(h, id) {
				t.Fatalf("step %d: del %q missed", step, id)
			}
			heap.remove(e)
			delete(model, id)
		} else if !ok {
			e := &entry{keys: id, idLen: uint16(len(id)), heapKey: rng.Uint32N(1000)}
			tab.put(h, e)
			heap.push(e)
			model[id] = e
		}
		if step%997 == 0 {
			// Shrink as well as grow.
			if step%(997*20) == 0 {
				for id, e := range model {
					tab.del(maphash.String(tab.seed, id), id)
					heap.remove(e)
					delete(model, id)
				}
			}
			check(t, &tab, heap, model)
		}
	}
	check(t, &tab, heap, model)
}

func check(t *testing.T, tab *table, heap deadlines, model map[string]*entry) {
	t.Helper()
	if tab.n != len(model) || len(heap) != len(model) {
		t.Fatalf("table %d, heap %d, model %d", tab.n, len(heap), len(model))
	}
	for id, e := range model {
		if got := tab.get(maphash.String(tab.seed, id), id); got != e {
			t.Fatalf("get %q: %p, want %p", id, got, e)
		}
	}
	for i, e := range heap {
		if int(e.hidx) != i {
			t.Fatalf("heap[%d].hidx = %d", i, e.hidx)
		}
		if p := (i - 1) / 2; i > 0 && heap[p].heapKey > e.heapKey {
			t.Fatalf("heap order broken at %d", i)
		}
	}
	if len(tab.slots) > 64 && tab.n*8 < len(tab.slots) {
		t.Fatalf("table of %d slots holds %d: not shrunk", len(tab.slots), tab.n)
	}
}
