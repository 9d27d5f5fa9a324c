"""Spatial-reasoning items (issue 8): every answer re-derived independently from the stored
parameters, the rendered images and the structure files (see tests/spatial_helpers.py)."""

from __future__ import annotations

import io
import json
import math
import os

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from microvqa_tui.pipeline.spatial import (
    FAMILIES,
    SpatialConfig,
    accuracy_by_family,
    generate_spatial,
    parse_families,
)
from tests import spatial_helpers as H

# More items / other seeds for a soak run: SPATIAL_TEST_COUNT=30 SPATIAL_TEST_SEED=3 pytest ...
COUNT = int(os.environ.get("SPATIAL_TEST_COUNT", "3"))
SEED = int(os.environ.get("SPATIAL_TEST_SEED", "7"))


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """One store with the sample figures and COUNT items of every family."""
    from store import open_store

    store = open_store(tmp_path_factory.mktemp("spatial") / "store")
    H.add_sample_figures(store)
    report = generate_spatial(store, SpatialConfig(count=COUNT, seed=SEED, workers=2))
    rows = H.spatial_mcqs(store)
    return store, report, rows


def by_family(rows, family):
    found = [r for r in rows if r["family"] == f"spatial:{family}"]
    assert found, f"no items of {family}"
    return found


# ============================================================================ the store


def test_every_family_lands_in_the_store_as_mcqs(generated):
    store, report, rows = generated
    summary = report.to_dict()
    assert set(summary["families"]) == set(FAMILIES)
    for family in FAMILIES:
        counts = summary["families"][family]
        assert counts["generated"] == COUNT and counts["skipped"] == 0, (family, counts)
        assert len(by_family(rows, family)) == COUNT
    for row in rows:
        assert row["origin"] == "spatial"
        assert row["status"] == "kept" and row["review"] == "unreviewed"
        assert row["figure_id"] == row["image_ids"][0]
        assert row["params"]["family"] == row["family"].removeprefix("spatial:")
        for fid in row["image_ids"]:
            fig = store.get("figures", fid)
            assert fig["source_kind"] == "spatial"
            from store import content_id

            assert content_id(fig["image_bytes"]) == fid  # content-addressed
    run = store.get("runs", report.run_id)
    assert run["status"] == "done" and run["step"] == "spatial"


def test_choices_are_distinct_and_the_key_is_one_of_them(generated):
    _, _, rows = generated
    for row in rows:
        choices = row["choices"]
        assert len(choices) == 4 and len(set(choices)) == 4, choices
        assert row["correct_answer"] == choices[row["correct_index"]]
        distractors = [c for i, c in enumerate(choices) if i != row["correct_index"]]
        assert row["correct_answer"] not in distractors
        params = row["params"]
        if "transform" in params:  # option parameters are stored in choice order
            assert params["options"][row["correct_index"]] == params["transform"]
            keys = [json.dumps(o, sort_keys=True) for o in params["options"]]
            assert len(set(keys)) == len(keys)


def test_same_seed_gives_the_same_items(generated, tmp_path):
    from store import open_store

    _, _, rows = generated
    families = ("rotation", "composition", "mol_rotation", "hbond")
    again = open_store(tmp_path / "again")
    H.add_sample_figures(again)
    # one thread here, several in the fixture: the same items either way
    generate_spatial(again, SpatialConfig(families=families, count=2, seed=SEED, workers=1))
    again_rows = H.spatial_mcqs(again)
    first = {r["mcq_id"]: r for r in rows}
    assert len(again_rows) == 2 * len(families)
    for row in again_rows:  # a smaller count gives the first items, identical
        assert row["mcq_id"] in first
        assert row["image_ids"] == first[row["mcq_id"]]["image_ids"]
        assert row["choices"] == first[row["mcq_id"]]["choices"]
    other = open_store(tmp_path / "other")
    H.add_sample_figures(other)
    generate_spatial(other, SpatialConfig(families=families, count=2, seed=SEED + 1))
    assert not {r["mcq_id"] for r in H.spatial_mcqs(other)} & set(first)
    # re-running on the same store adds nothing
    report = generate_spatial(again, SpatialConfig(families=families, count=2, seed=SEED))
    assert report.mcqs_new == 0 and report.generated == 2 * len(families)


# ============================================================================ micrographs


def test_rotation_rederived_by_angle_search(generated):
    store, _, rows = generated
    for row in by_family(rows, "rotation"):
        v1, v2 = H.panel_images(store, row)
        est = H.estimate_rotation(v1, v2)
        options = [H.parse_micro_option(c).theta_cw for c in row["choices"]]
        key = options[row["correct_index"]]
        err = (est - key + 180) % 360 - 180
        assert abs(err) <= 1.5, (est, key, row["choices"])
        nearest = min(options, key=lambda o: abs((est - o + 180) % 360 - 180))
        assert nearest == key


def test_translation_rederived_by_phase_correlation(generated):
    store, _, rows = generated
    for row in by_family(rows, "translation"):
        v1, v2 = H.panel_images(store, row)
        size = v1.shape[0]
        sx, sy = H.estimate_translation(v1, v2)
        move = (-sx / size, -sy / size)  # the content shifts opposite to the field of view
        options = [H.parse_micro_option(c).move for c in row["choices"]]
        key = options[row["correct_index"]]
        assert math.dist(move, key) * size <= 1.5, (move, key)
        assert min(options, key=lambda o: math.dist(o, move)) == key


def test_zoom_rederived_by_scale_search(generated):
    store, _, rows = generated
    for row in by_family(rows, "zoom"):
        v1, v2 = H.panel_images(store, row)
        est = H.estimate_zoom(v1, v2)
        options = [H.parse_micro_option(c).zoom for c in row["choices"]]
        key = options[row["correct_index"]]
        assert abs(math.log(est / key)) <= math.log(1.04), (est, key)
        assert min(options, key=lambda z: abs(math.log(est / z))) == key


def test_the_key_explains_the_pair_best_for_every_micrograph_item(generated):
    store, _, rows = generated
    for family in ("rotation", "translation", "zoom", "composition"):
        for row in by_family(rows, family):
            v1, v2 = H.panel_images(store, row)
            scores = [H.predicted_score(v1, v2, H.parse_micro_option(c)) for c in row["choices"]]
            key = scores[row["correct_index"]]
            others = [s for i, s in enumerate(scores) if i != row["correct_index"]]
            assert key >= 0.6 and key > max(others) + 0.05, (family, row["choices"], scores)


def test_views_are_crops_from_inside_the_source_figure(generated):
    """Re-render each view from its stored geometry with scipy and compare with the panel."""
    store, _, rows = generated
    for family in ("rotation", "translation", "zoom", "composition"):
        for row in by_family(rows, family)[:2]:
            params = row["params"]
            src = H.image_of(store, params["source_figure_id"])
            w, h = params["source_size"]
            assert src.shape[:2] == (h, w)
            size = params["view_size"]
            panels = H.panel_images(store, row)
            for key, panel in zip(("view1", "view2"), panels, strict=True):
                v = params[key]
                t = math.radians(v["phi"])
                rot = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
                corners = np.array([[0, 0], [size, 0], [0, size], [size, size]]) - size / 2
                pts = corners @ (v["a"] * rot).T + [v["cx"], v["cy"]]
                assert (pts >= 0).all() and (pts[:, 0] <= w).all() and (pts[:, 1] <= h).all()
                c = np.arange(size) + 0.5 - size / 2
                gx, gy = np.meshgrid(c, c)
                q = np.stack([gx.ravel(), gy.ravel()])
                x, y = (v["a"] * rot) @ q + np.array([[v["cx"]], [v["cy"]]])
                g = H.grey(src)
                if v["a"] > 1:
                    g = ndimage.gaussian_filter(g, 0.45 * v["a"])
                ref = ndimage.map_coordinates(g, [y - 0.5, x - 0.5], order=1)
                ncc = np.corrcoef(ref, H.grey(panel).ravel())[0, 1]
                assert ncc >= 0.9, (family, key, ncc)


# ============================================================================ molecule views


def _molecule_atoms(params):
    return H.read_ligand(H.STRUCTURES / params["structure"]["file"])


def test_molecule_views_rederived_from_the_structure_file(generated):
    store, _, rows = generated
    for family in ("mol_rotation", "mol_translation", "mol_zoom"):
        for row in by_family(rows, family):
            params = row["params"]
            atoms = _molecule_atoms(params)
            p1, p2 = H.panel_images(store, row)
            cam1 = params["camera1"]
            first = H.colour_match(
                p1, H.project(atoms.xyz, cam1), atoms.elements, cam1["scale"], bonds=atoms.bonds
            )
            assert first >= 0.8, (family, first)
            skip = 36 if family == "mol_translation" else 0  # the scale bar
            colours, shapes = [], []
            for text in row["choices"]:
                cam = H.camera_for_option(cam1, H.parse_mol_option(text))
                pix = H.project(atoms.xyz, cam)
                colours.append(
                    H.colour_match(p2, pix, atoms.elements, cam["scale"], bonds=atoms.bonds)
                )
                shapes.append(
                    H.silhouette_score(p2, pix, atoms.elements, atoms.bonds, cam["scale"], skip)
                )
            k = row["correct_index"]
            assert colours[k] >= 0.8, (family, row["choices"], colours)
            assert shapes[k] >= 0.7, (family, row["choices"], shapes)
            others = [s for i, s in enumerate(shapes) if i != k]
            assert shapes[k] > max(others) + 0.05, (family, row["choices"], shapes)
            # the words of the key give the stored second camera
            cam2 = H.camera_for_option(cam1, H.parse_mol_option(row["correct_answer"]))
            assert np.allclose(cam2["rotation"], params["camera2"]["rotation"], atol=2e-6)
            assert np.allclose(cam2["offset"], params["camera2"]["offset"], atol=2e-3)
            assert cam2["scale"] == pytest.approx(params["camera2"]["scale"], rel=1e-5)


def test_molecule_translation_and_zoom_measured_on_pixels(generated):
    store, _, rows = generated
    for row in by_family(rows, "mol_translation"):
        p1, p2 = H.panel_images(store, row)
        scale = row["params"]["camera1"]["scale"]
        c1 = np.argwhere(H.foreground(p1, bottom_skip=36)).mean(axis=0)
        c2 = np.argwhere(H.foreground(p2, bottom_skip=36)).mean(axis=0)
        moved = ((c2[1] - c1[1]) / scale, -(c2[0] - c1[0]) / scale)  # Å, y up
        options = [H.parse_mol_option(c).move for c in row["choices"]]
        key = options[row["correct_index"]]
        assert math.dist(moved, key) <= 0.3, (moved, key)
        assert min(options, key=lambda o: math.dist(o, moved)) == key
    for row in by_family(rows, "mol_zoom"):
        p1, p2 = H.panel_images(store, row)
        # scale search about the panel centre (frame lines cut off: they do not scale)
        est = H.estimate_zoom(p1[4:-4, 4:-4], p2[4:-4, 4:-4], size=156)
        options = [H.parse_mol_option(c).zoom for c in row["choices"]]
        key = options[row["correct_index"]]
        assert abs(math.log(est / key)) <= math.log(1.06), (est, key)
        assert min(options, key=lambda z: abs(math.log(est / z))) == key


# ============================================================================ interactions


def _complex(params):
    s = params["structure"]
    return H.read_pdb(H.STRUCTURES / s["protein_file"]), H.read_ligand(
        H.STRUCTURES / s["ligand_file"]
    )


def test_contacts_rederived_with_a_kdtree(generated):
    _, _, rows = generated
    for row in by_family(rows, "contacts"):
        params = row["params"]
        protein, ligand = _complex(params)
        cutoff = params["criteria"]["contact_cutoff"]
        dmin = H.min_distance_by_residue(protein, ligand)
        touching = {label: dmin[label] <= cutoff for label in row["choices"]}
        wanted = "NOT" not in row["question"]
        keyed = [label for label in row["choices"] if touching[label] == wanted]
        assert keyed == [row["correct_answer"]], (row["question"], dmin)
        for label in row["choices"]:
            assert params["facts"][label]["min_heavy_distance"] == pytest.approx(
                dmin[label], abs=2e-3
            )


def test_hydrogen_bonds_rederived_with_a_kdtree(generated):
    _, _, rows = generated
    for row in by_family(rows, "hbond"):
        params = row["params"]
        protein, ligand = _complex(params)
        crit = params["criteria"]
        bonds = H.hbond_residues(protein, ligand, crit["hbond_distance"], crit["hbond_angle"])
        with_bond = [label for label in row["choices"] if bonds.get(label)]
        assert with_bond == [row["correct_answer"]], (row["choices"], bonds)
        for d, angle in bonds[row["correct_answer"]]:
            assert d <= 3.5 and angle >= 120
        stored = params["facts"][row["correct_answer"]]["hbonds"]
        assert sorted(round(b["distance"], 2) for b in stored) == sorted(
            round(d, 2) for d, _ in bonds[row["correct_answer"]]
        )


def test_interaction_site_rederived_from_the_camera(generated):
    store, _, rows = generated
    for row in by_family(rows, "interaction_site"):
        params = row["params"]
        protein, ligand = _complex(params)
        residue = params["residue_label"]
        cutoff = params["criteria"]["contact_cutoff"]
        mids = H.contact_midpoints(protein, ligand, residue, cutoff)
        assert len(mids)
        cam = params["camera"]
        centre = H.project(ligand.xyz[ligand.heavy], cam)[:, :2].mean(axis=0)
        rel = H.project(mids, cam)[:, :2] - centre
        words = {
            ("upper" if dy < 0 else "lower") + " " + ("left" if dx < 0 else "right")
            for dx, dy in rel
        }
        assert words == {row["correct_answer"]}, (words, row["choices"])
        # and the image shows the ligand where the camera says
        image = H.image_of(store, row["image_ids"][0])
        lig_pix = H.project(ligand.xyz, cam)
        shown = [
            i
            for i, res in enumerate(protein.residue)
            if H.residue_label(res) in {r["label"] for r in params["shown_residues"]}
        ]
        palette = {**H.CPK_HEAVY, "PC": (200, 200, 200)}
        score = H.colour_match(
            image,
            lig_pix,
            ligand.elements,
            cam["scale"],
            bonds=ligand.bonds,
            others=H.project(protein.xyz[shown], cam),
            palette=palette,
        )
        assert score >= 0.75


def test_generator_chemistry_agrees_with_the_kdtree_on_every_pocket_residue():
    from microvqa_tui.pipeline.spatial.chem import hydrogen_bonds, residue_min_distances
    from microvqa_tui.pipeline.spatial.structures import discover, load_complex

    found = discover(H.STRUCTURES)
    assert {c.id for c in found.complexes} == {"syn1", "syn2"}
    for files in found.complexes:
        cx = load_complex(files, found.root, 8.0)
        protein, ligand = H.read_pdb(files.protein), H.read_ligand(files.ligand)
        dmin = H.min_distance_by_residue(protein, ligand)
        mine = residue_min_distances(cx.pocket, cx.ligand)
        assert {cx.pocket.label(i): round(float(d), 4) for i, d in enumerate(mine)} == {
            k: round(v, 4) for k, v in dmin.items() if v <= 8.0
        }
        bonds, mode = hydrogen_bonds(cx.pocket, cx.ligand)
        assert mode == "hydrogens"
        theirs = H.hbond_residues(protein, ligand)
        assert {cx.pocket.label(b.residue) for b in bonds} == set(theirs)
        assert len(bonds) == sum(len(v) for v in theirs.values()) >= 3
        contacts = {k for k, v in dmin.items() if v <= 4.0}
        assert len(contacts) >= 4 and len(set(dmin) - contacts) >= 3  # real pocket, real shell


def test_missing_hydrogens_are_added_or_handled(tmp_path):
    from rdkit import Chem

    from microvqa_tui.pipeline.spatial.chem import hydrogen_bonds
    from microvqa_tui.pipeline.spatial.structures import load_ligand, load_protein

    src = H.STRUCTURES / "complexes" / "syn1"
    mol = Chem.MolFromMolFile(str(src / "syn1_ligand.sdf"), removeHs=False)
    heavy_only = tmp_path / "lig_ligand.sdf"
    heavy_only.write_text(Chem.MolToMolBlock(Chem.RemoveHs(mol)))
    ligand = load_ligand(heavy_only, tmp_path)
    assert ligand.hydrogens == "added" and ligand.elements.count("H") == 9
    pdb = (src / "syn1_protein.pdb").read_text().splitlines()
    no_h = tmp_path / "noh_protein.pdb"
    no_h.write_text(
        "\n".join(x for x in pdb if not (x.startswith("ATOM") and x[76:78].strip() == "H"))
    )
    protein = load_protein(no_h)
    assert not protein.has_hydrogens
    bonds, mode = hydrogen_bonds(protein, load_ligand(src / "syn1_ligand.sdf", src))
    assert mode == "heavy_atom"
    labels = {protein.label(b.residue) for b in bonds}
    assert {"SER 45", "ASP 88", "GLN 112"} <= labels


# ============================================================================ API and CLI


def test_accuracy_by_family_rolls_up_spatial_groups():
    items = [
        {"mcq_id": "a", "family": "spatial:rotation", "correct_index": 0, "choices": ["x", "y"]},
        {"mcq_id": "b", "family": "spatial:rotation", "correct_index": 1, "choices": ["x", "y"]},
        {"mcq_id": "c", "family": "spatial:hbond", "correct_index": 2, "choices": list("abcd")},
        {"mcq_id": "d", "family": "caption", "correct_index": 0, "choices": list("abcd")},
        {"mcq_id": "e", "family": "caption", "correct_index": 0, "choices": list("abcd")},
    ]
    acc = accuracy_by_family(items, {"a": 0, "b": "x", "c": "c", "d": None})
    assert acc["spatial:rotation"] == {
        "n": 2,
        "correct": 1,
        "unanswered": 0,
        "chance": 0.5,
        "accuracy": 0.5,
    }
    assert acc["spatial:hbond"]["accuracy"] == 1.0
    assert acc["caption"]["n"] == 1 and acc["caption"]["unanswered"] == 1
    assert acc["spatial"]["n"] == 3 and acc["spatial"]["correct"] == 2
    assert acc["spatial/micrograph"]["n"] == 2 and acc["spatial/interaction"]["n"] == 1
    assert list(acc)[:3] == ["caption", "spatial:hbond", "spatial:rotation"]


def test_family_selection_and_settings_are_checked():
    from microvqa_tui.errors import PipelineError

    assert parse_families("rotation, spatial:hbond") == ("rotation", "hbond")
    assert parse_families("micrograph") == ("rotation", "translation", "zoom", "composition")
    assert parse_families("all") == FAMILIES
    with pytest.raises(PipelineError, match="unknown spatial family: spin"):
        parse_families("rotation,spin")
    with pytest.raises(PipelineError, match="closeness"):
        SpatialConfig(closeness="close").validate()  # type: ignore[arg-type]
    with pytest.raises(PipelineError, match="angle step"):
        SpatialConfig(angle_step=90).validate()
    with pytest.raises(PipelineError, match="only 4 distinct rotations"):
        SpatialConfig(angle_step=60, n_choices=6).validate()


def test_pair_layout_and_closeness(store):
    H.add_sample_figures(store, limit=6)
    cfg = SpatialConfig(families=("rotation",), count=2, seed=3, layout="pair", closeness="near")
    generate_spatial(store, cfg)
    for row in H.spatial_mcqs(store):
        assert len(row["image_ids"]) == 2 and "Images 1 and 2" in row["question"]
        v1, v2 = H.panel_images(store, row)
        est = H.estimate_rotation(v1, v2)
        key = H.parse_micro_option(row["correct_answer"]).theta_cw
        assert abs((est - key + 180) % 360 - 180) <= 1.5
        mags = {abs(H.parse_micro_option(c).theta_cw) for c in row["choices"]}
        assert mags <= {abs(key), abs(key) + 15, abs(key) - 15}  # near: one angle step


def test_cli_generate_spatial_on_the_embedded_sample(tmp_path):
    from typer.testing import CliRunner

    import microvqa_tui.cli_spatial  # registers `generate`
    from microvqa_tui.cli import app

    runner = CliRunner()
    store_dir = tmp_path / "store"
    manifest = H.REPO / "assets" / "sample" / "manifest.jsonl"
    import microvqa_tui.cli_ingest  # noqa: F401  (registers `ingest`)

    out = runner.invoke(app, ["--store", str(store_dir), "ingest", str(manifest), "--json"])
    assert out.exit_code == 0, out.output
    out = runner.invoke(
        app,
        ["--store", str(store_dir), "generate", "spatial", "--count", "1", "--seed", "5", "--json"],
    )
    assert out.exit_code == 0, out.output
    report = json.loads(out.stdout[out.stdout.index("{") :])
    assert {f: c["generated"] for f, c in report["families"].items()} == dict.fromkeys(FAMILIES, 1)
    assert report["sources"]["figures"] >= 30 and report["sources"]["complexes"] == 2
    out = runner.invoke(
        app, ["--store", str(store_dir), "generate", "spatial", "--families", "spin"]
    )
    assert out.exit_code != 0


def test_figure_bytes_decode_to_their_stated_size(generated):
    store, _, rows = generated
    for row in rows[:: max(1, len(rows) // 10)]:
        for fid in row["image_ids"]:
            fig = store.get("figures", fid)
            with Image.open(io.BytesIO(fig["image_bytes"])) as im:
                assert (im.width, im.height) == (fig["width"], fig["height"])
                assert im.format == fig["format"]
