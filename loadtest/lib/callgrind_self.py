"""Self cost (Ir) per function in a callgrind dump, divided by a request
count: usage callgrind_self.py DUMP REQUESTS [ROWS] [callers-of FUNCTION]
(the second form lists who calls FUNCTION, by the cost of those calls).

callgrind_annotate attributes inlined async code confusingly; this reads the
dump format directly: cost lines under `fn=` are that function's own, and
the line after each `calls=` is the callee's inclusive cost (skipped)."""
import collections
import re
import sys


def self_costs(path, callee=None):
    """Self cost per function; with `callee`, instead the inclusive cost of
    the calls each function makes to `callee`."""
    names, costs, current, skip = {}, collections.Counter(), None, False
    called = None
    name_line = re.compile(r"^(fn|cfn|fl|fi|fe|cfi|cfl|ob|cob)=\((\d+)\)(?: (.*))?$")
    with open(path) as dump:
        for line in dump:
            line = line.rstrip("\n")
            match = name_line.match(line)
            if match:
                kind, ident, name = match.groups()
                if kind in ("fn", "cfn"):
                    if name:
                        names[ident] = name
                    if kind == "fn":
                        current = names.get(ident, ident)
                    else:
                        called = names.get(ident, ident)
                continue
            if line.startswith("calls="):
                skip = True
                continue
            if line and (line[0].isdigit() or line[0] in "+-*"):
                if skip:
                    skip = False
                    fields = line.split()
                    if callee and called == callee and len(fields) >= 2 and current:
                        costs[current] += int(fields[1])
                    continue
                if callee:
                    continue
                fields = line.split()
                if len(fields) >= 2 and current:
                    costs[current] += int(fields[1])
    return costs


def main():
    path, requests = sys.argv[1], int(sys.argv[2])
    rows = int(sys.argv[3]) if len(sys.argv) > 3 else 40
    callee = sys.argv[5] if len(sys.argv) > 5 and sys.argv[4] == "callers-of" else None
    costs = self_costs(path, callee)
    what = f"calls to {callee}" if callee else "instructions"
    print(f"{what} / request: {sum(costs.values()) / requests:,.0f}")
    for name, cost in costs.most_common(rows):
        print(f"{cost / requests:8,.0f}  {name[:140]}")


if __name__ == "__main__":
    main()
