"""The budget line: what the training will do, in the user's units, worked out by hand."""

from tfxray.config import load_recipe
from tfxray.training.trainer import describe_budget, fit_plan


def test_the_wrist_protocol_budget_in_iterations_and_epochs():
    recipe = load_recipe("wrist")  # 20000 iterations of batch 100
    plan = fit_plan(recipe, n_train=8890)  # 89 steps per epoch; ceil(20000 / 89) = 225 epochs
    assert describe_budget(recipe, plan) == "20000 iterations = 225 epochs of 89 steps"


def test_an_epoch_budget_and_a_staged_schedule():
    recipe = load_recipe("wrist", [(["train", "epochs"], 3), (["train", "batch_size"], 8)])
    assert describe_budget(recipe, fit_plan(recipe, n_train=41)) == "3 epochs of 6 steps"  # ceil(41 / 8)
    staged = load_recipe("wrist", [(["train", "epochs"], 1), (["train", "finetune_epochs"], 4),
                                   (["train", "batch_size"], 64)])
    assert describe_budget(staged, fit_plan(staged, n_train=10)) == "1 epoch of 1 step, then 4 fine-tuning epoch(s)"
