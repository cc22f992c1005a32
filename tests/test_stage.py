import socket

from workflow_scripts.stage import log, setup_logging


def test_the_log_keeps_every_attempt_under_its_own_header(tmp_path, monkeypatch):
    path = tmp_path / "train.log"
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    try:
        setup_logging(path)
        log.info("epoch 1/3")
        path.unlink()  # what Snakemake does before it runs a job again
        monkeypatch.setenv("SLURM_JOB_ID", "4242")
        setup_logging(path)
        log.warning("resuming after epoch 1")
    finally:
        setup_logging()  # closes the file
    lines = path.read_text().splitlines()
    assert len(lines) == 4
    assert lines[0].endswith(f"INFO ===== attempt 1 on {socket.gethostname()} =====")
    assert lines[1].endswith("INFO epoch 1/3")
    assert lines[2].endswith(f"INFO ===== attempt 2 on {socket.gethostname()}, "
                             "SLURM job 4242 =====")
    assert lines[3].endswith("WARNING resuming after epoch 1")
