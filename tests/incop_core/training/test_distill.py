"""Distillation in retraining (optim.retrain_distill): the loss, what it pulls the pruned network towards, that the
teacher is the fine-tuned dense network and stays frozen, and that the default keeps old hashes (docs/algorithms.md
§4.5)."""

import pytest
import torch
import torch.nn.functional as F

from incop_core.imp import paths, stages
from incop_core.imp.config import validate
from incop_core.imp.plan import dense_key
from incop_core.imp.runner import run_pruning
from incop_core.models.zoo import ModelConfig, build_model
from incop_core.training.distill import Distiller, distiller
from incop_core.training.optim import OptimConfig
from incop_core.foundations.hashdump import hashed_dump


def _nets(seed_student=1):
    torch.manual_seed(0)
    teacher = build_model(ModelConfig(width=8), (1, 16, 16), 4).eval()
    torch.manual_seed(seed_student)
    return teacher, build_model(ModelConfig(width=8), (1, 16, 16), 4)


def test_the_loss_is_cross_entropy_at_weight_zero_and_zero_against_itself_at_weight_one():
    teacher, student = _nets()
    images, labels = torch.randn(8, 1, 16, 16), torch.randint(0, 4, (8,))
    with torch.no_grad():
        logits = student.eval()(images)
    assert torch.allclose(Distiller(teacher, 0.0, 4.0).loss(logits, images, labels), F.cross_entropy(logits, labels))
    assert float(Distiller(student, 1.0, 4.0).loss(logits, images, labels)) == pytest.approx(0.0, abs=1e-6)
    assert float(Distiller(teacher, 1.0, 4.0).loss(logits, images, labels)) > 1e-4


def test_distilling_pulls_the_student_towards_the_teachers_answers():
    teacher, student = _nets()
    student.eval()
    images, labels = torch.randn(32, 1, 16, 16), torch.randint(0, 4, (32,))
    loss = Distiller(teacher, 1.0, 2.0)
    opt = torch.optim.SGD(student.parameters(), lr=0.05)
    first = float(loss.loss(student(images), images, labels))
    for _ in range(30):
        opt.zero_grad()
        loss.loss(student(images), images, labels).backward()
        opt.step()
    assert float(loss.loss(student(images), images, labels)) < 0.5 * first


def test_no_teacher_at_the_default_and_the_default_keeps_old_hashes():
    base = {"data": {"name": "synthetic"}}
    plain, distilled = validate(base), validate({**base, "optim": {"retrain_distill": 0.5}})
    assert distiller(torch.nn.Linear(2, 2), {}, plain.optim) is None
    assert not {"retrain_distill", "distill_temperature"} & set(hashed_dump(plain)["optim"])
    assert distilled.config_hash() != plain.config_hash()
    assert dense_key(distilled) == dense_key(plain)  # fine-tuning does not distil: the dense network is shared
    with pytest.raises(ValueError):
        OptimConfig(retrain_distill=1.5)


def test_retraining_distils_from_the_frozen_fine_tuned_network(tmp_path, tiny_config, monkeypatch):
    raw = tiny_config().model_dump(mode="json")
    raw["optim"].update(retrain_distill=0.7, distill_temperature=3.0)
    teachers = []
    real_train = stages.train

    def spy(*args, teacher=None, **kwargs):
        teachers.append(teacher and (teacher, {k: v.clone() for k, v in teacher.teacher.state_dict().items()}))
        return real_train(*args, teacher=teacher, **kwargs)

    monkeypatch.setattr(stages, "train", spy)
    run = run_pruning(validate(raw), tmp_path)
    dense = torch.load(paths.iteration_dir(run, 0) / paths.WEIGHTS, weights_only=True)
    assert len(teachers) == 3 and teachers[0] is None  # fine-tuning does not distil
    for teacher, before in teachers[1:]:  # both pruning iterations do
        assert (teacher.weight, teacher.temperature) == (0.7, 3.0) and not teacher.teacher.training
        after = teacher.teacher.state_dict()
        assert all(torch.equal(before[k], dense[k]) and torch.equal(after[k], dense[k]) for k in dense)
