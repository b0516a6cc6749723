"""Print the training rate of runs from their log.jsonl: median of the logged rates after the first entries."""
import json, sys, statistics
for run in sys.argv[1:]:
    try:
        log = [json.loads(l) for l in open(f"{run}/log.jsonl")]
    except FileNotFoundError:
        print(run, "no log"); continue
    tr = [e for e in log if e["event"] == "train"]
    if len(tr) < 3:
        print(run, "entries", len(tr)); continue
    steady = tr[len(tr) // 3:]
    sps = statistics.median(e["samples_per_s"] for e in steady)
    nf = log[0]["config"]["num_frames"]; b = log[0]["config"]["batch_size"] * log[0]["config"]["grad_accum"] * log[0]["world_size"]
    first = tr[0]
    print(f"{run}: {len(tr)} log entries to step {tr[-1]['step']}; steady {sps:.1f} crops/s = {sps * nf / 1e3:.1f} k frames/s"
          f" = {sps / b:.2f} updates/s (batch {b}); first entry at step {first['step']}, elapsed {first.get('elapsed_s', float('nan')):.1f} s;"
          f" loss {steady[-1]['loss']:.4g}")
    for e in log:
        if e["event"] == "valid":
            print("   valid", e["step"], {k: round(v, 3) for k, v in e.items() if isinstance(v, float)})
    if log[-1]["event"] == "end":
        print("   end", log[-1])
