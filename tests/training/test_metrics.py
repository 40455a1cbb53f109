import pytest

from rnn_experiments.run.metrics import COLUMNS, MetricsWriter, read_metrics


def test_rows_are_readable_while_writing_and_a_partial_last_line_is_ignored(tmp_path):
    path = tmp_path / "metrics.csv"
    writer = MetricsWriter(path)
    for step in (10, 20):
        writer.write({"step": step, "loss": 1.0 / step, "accuracy": 0.5, "eval_accuracy": ""})
    assert read_metrics(path).step.tolist() == [10, 20]  # flushed, file still open
    with open(path, "a") as f:
        f.write("30,0.03")  # a process killed mid-row
    df = read_metrics(path)
    assert df.step.tolist() == [10, 20] and list(df.columns) == COLUMNS
    assert df.loss.tolist() == [0.1, 0.05]
    writer.close()


def test_resume_rewrites_the_file_from_the_checkpoint_rows(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text("garbage from a crashed run\n1,2,3\n")
    MetricsWriter(path, rows=[{k: 1 for k in COLUMNS}]).close()
    assert read_metrics(path).step.tolist() == [1]


@pytest.mark.parametrize("text", ["", "a,b\n1,2\n", "step,loss\n1,2,3,4,5\n"])
def test_a_file_that_is_not_a_metrics_table_names_its_path(tmp_path, text):
    path = tmp_path / "metrics.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match="metrics.csv"):
        read_metrics(path)
