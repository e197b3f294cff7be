import time, json
from tests.test_engine_process import engine, make_spec, workspace, follow_to_end, file_events, _no_process_left_behind  # noqa
def test_prof(engine, make_spec, workspace):
    t0=time.monotonic()
    run_id = engine.submit("pretrain", make_spec(max_steps=20, attention_interval=10))
    ev = follow_to_end(engine, run_id)
    t1=time.monotonic()
    run_dir = workspace/"runs"/run_id
    job=json.load(open(run_dir/"job.json"))
    evs=file_events(run_dir)
    print("\nfollow took", t1-t0)
    print("first event after", evs[0]["time"]-job["written"])
    print("last event after", evs[-1]["time"]-job["written"])
    print("now after", time.time()-job["written"])
    print(open(run_dir/"job.log").read()[-2000:])
