"""Interleaved rounds, and ratios paired within them."""
import json
import statistics
import time


def rounds(bench, scenario, cases, run_one, metric, max_rounds, allowance, also=()):
    """Runs every case once per round, rounds interleaved (so a burst of load from
    elsewhere on the machine hits all cases alike), while the scenario's time allowance
    lasts (at least one round). Keeps, per case, the run with the median `metric`
    (lower median), its spread, and every run's value by round (for ratio()); for each
    key in `also` every run's value too (as all_<key>, so ratio() can pair those). A run
    is skipped when the whole bench's budget is nearly spent."""
    runs = {}
    t0 = time.monotonic()
    done = 0
    for rnd in range(max_rounds):
        if rnd > 0 and time.monotonic() - t0 > allowance * rnd / max_rounds:
            break
        for case in cases:
            if bench.budget_left() < 25:
                bench.notes.append(f"{scenario}: a run was skipped, the 5-minute budget ran out")
                break
            row = run_one(case)
            row["round"] = rnd
            runs.setdefault(json.dumps(case_key(row)), []).append(row)
        done = rnd + 1
    rows = []
    for key, rs in runs.items():
        rs.sort(key=lambda r: r[metric] if r[metric] is not None else -1)
        pick = dict(rs[(len(rs) - 1) // 2])
        vals = [r[metric] for r in rs if r[metric] is not None]
        pick["runs"] = len(rs)
        pick["min"], pick["max"] = (min(vals), max(vals)) if vals else (None, None)
        pick["all_runs"] = [r[metric] for r in rs]
        for k in also:
            pick[f"all_{k}"] = [r[k] for r in rs]
        pick["all_rounds"] = [r["round"] for r in rs]
        pick["incomplete_runs"] = sum(1 for r in rs if r.get("complete") is False)
        rows.append(pick)
    return rows, done


def case_key(row):
    return [row.get(k) for k in ("direction", "streams", "payload", "case")]


def ratio(rows, key, group, base="direct", field="ratio"):
    """Sets row[field], each row's ratio to the `base` case of its group: the median, over
    the rounds both ran in, of the row's run over the base's run of the same round. Pairing
    runs that ran seconds apart cancels the slow swings of a shared machine, which a ratio
    of two medians would not. Rows not run in rounds (references) use the base's median.
    `key` is the rounds' metric, or one of the keys rounds() kept with `also`."""
    runs = f"all_{key}"
    for r in rows:
        b = [x for x in rows if x["case"] == base and all(x[g] == r[g] for g in group)]
        if not b or not b[0][key]:
            r[field] = None
            continue
        if "all_rounds" not in r or "all_rounds" not in b[0]:
            r[field] = r[key] / b[0][key] if r[key] is not None else None
            continue
        mine, theirs = ((r[runs], b[0][runs]) if runs in r
                        else (r["all_runs"], b[0]["all_runs"]))
        base_by_round = dict(zip(b[0]["all_rounds"], theirs))
        pairs = [v / base_by_round[n] for n, v in zip(r["all_rounds"], mine)
                 if v is not None and base_by_round.get(n)]
        r[field] = statistics.median(pairs) if pairs else None
        r[field + "_runs"] = pairs
