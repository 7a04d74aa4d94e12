/**
 * The incremental owner index must choose exactly what the balancer's reference `chooseOwner`
 * chooses, through any sequence of additions, removals and load changes.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { chooseOwner } from "./balancer.ts";
import { OwnerIndex } from "./owner-index.ts";

interface Worker {
  readonly id: string;
  capacity: number;
  zone: string;
  load: number;
}

type Op =
  | { readonly kind: "add"; readonly id: number; readonly capacity: number; readonly zone: number; readonly load: number }
  | { readonly kind: "remove"; readonly id: number }
  | { readonly kind: "load"; readonly id: number; readonly delta: number };

const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant("add" as const), id: fc.nat(11), capacity: fc.integer({ min: 1, max: 4 }), zone: fc.nat(3), load: fc.nat(6) }),
  fc.record({ kind: fc.constant("remove" as const), id: fc.nat(11) }),
  fc.record({ kind: fc.constant("load" as const), id: fc.nat(11), delta: fc.integer({ min: -2, max: 3 }) }),
);

describe("OwnerIndex", () => {
  it("chooses what chooseOwner chooses, with and without an excluded worker", () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 120 }), (ops) => {
        const index = new OwnerIndex();
        const workers = new Map<string, Worker>();
        for (const o of ops) {
          const id = `w${o.id}`;
          if (o.kind === "add") {
            if (workers.has(id)) continue;
            const w: Worker = { id, capacity: o.capacity, zone: `z${o.zone}`, load: o.load };
            workers.set(id, w);
            index.add(w);
          } else if (o.kind === "remove") {
            workers.delete(id);
            index.remove(id);
          } else {
            const w = workers.get(id);
            if (w === undefined || w.load + o.delta < 0) continue;
            w.load += o.delta;
            index.updated(id);
          }
          const all = [...workers.values()];
          assert.equal(index.choose(), chooseOwner(all));
          for (const exclude of [...workers.keys(), "nobody"]) {
            assert.equal(index.choose(exclude), chooseOwner(all, exclude), `excluding ${exclude}`);
          }
        }
      }),
      { numRuns: 300 },
    );
  });

  it("is empty-safe: no worker, or only the excluded one, gives null", () => {
    const index = new OwnerIndex();
    assert.equal(index.choose(), null);
    index.add({ id: "w1", capacity: 1, zone: "a", load: 0 });
    assert.equal(index.choose("w1"), null);
    assert.equal(index.choose(), "w1");
  });
});
