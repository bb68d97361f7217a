"""``antiberty``: AntiBERTy (BERT, 8 layers, 512-d, 25.5M parameters, MIT), from the real
pretrained weights that the ``antiberty==0.1.3`` wheel ships.

Files (found with ``importlib.util.find_spec``, which does not execute the package: importing
it costs 6.6 s and pulls in its runner, broken under transformers 5 anyway):
``<antiberty>/trained_models/AntiBERTy_md_smooth/`` (a Hugging Face BERT directory) and
``<antiberty>/trained_models/vocab.txt`` (25 tokens: 5 specials + the 20 standard residues).

Loading, the way that works with both transformers 4.57 and 5.x:

* ``BertTokenizer(vocab=<vocab.txt>, do_lower_case=False)``. **Not** ``vocab_file=``: with
  transformers 5 that keyword is ignored and every residue silently becomes ``[UNK]`` (pinned
  by ``tests/test_models_antiberty.py::test_vocab_file_trap_is_caught``). The wrapping
  :class:`~pytest_plmtransfer.models.hf.ResidueTokenizer` refuses a tokenizer that maps a
  standard residue to ``[UNK]`` and checks every sequence encodes as ``[CLS] residues [SEP]``.
* ``BertModel.from_pretrained(<dir>, add_pooling_layer=False)``: the checkpoint's MLM, species,
  chain and graft heads and its pooler are unused; a *missing* key would be an error.

Layers 0..8 are ``hidden_states`` (:class:`~pytest_plmtransfer.models.hf.HFAdapter`).
``X B Z U O``, which the vocabulary lacks, are fed as ``[UNK]``, as AntiBERTy's own tokenizer does
(rejecting them would make whole FLIP tasks unusable for one rare letter). At most 510 residues.
``random`` is ``BertModel(config)`` under a seeded generator (BERT's own ``_init_weights``).

Weights identity: ``antiberty==<version>:sha256:<sha256 of pytorch_model.bin>``.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_plmtransfer.infra.errors import PlmTransferError, ResourceUnavailable
from pytest_plmtransfer.infra.hashing import sha256_file_once
from pytest_plmtransfer.models.describe import ModelDescription, hf_config_description
from pytest_plmtransfer.models.torch_base import library_version

if TYPE_CHECKING:  # pragma: no cover - typing only
    from pytest_plmtransfer.models.hf import HFAdapter

NAME = "antiberty"
#: 512 absolute positions minus [CLS] and [SEP]
MAX_RESIDUES = 510
#: letters accepted: the vocabulary's 20 residues + the ambiguity codes fed as [UNK]
ALPHABET = "ACDEFGHIKLMNPQRSTVWY" + "XBZUO"
_MODEL_SUBDIR = "trained_models/AntiBERTy_md_smooth"
_VOCAB = "trained_models/vocab.txt"
_WEIGHTS = "pytorch_model.bin"
_INSTALL = "pip install antiberty==0.1.3 (the wheel ships the pretrained weights)"


@dataclass(frozen=True)
class AntibertyFiles:
    model_dir: Path
    vocab: Path
    weights: Path
    version: str


def antiberty_files() -> AntibertyFiles:
    """Locate the shipped weights without importing the package (see the module docstring)."""
    try:
        spec = importlib.util.find_spec("antiberty")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise ResourceUnavailable("the antiberty package", f"it is not installed; {_INSTALL}")
    root = Path(next(iter(spec.submodule_search_locations)))
    pkg_version = library_version("antiberty")
    files = AntibertyFiles(root / _MODEL_SUBDIR, root / _VOCAB, root / _MODEL_SUBDIR / _WEIGHTS, pkg_version)
    for needed in (files.model_dir / "config.json", files.vocab, files.weights):
        if not needed.is_file():
            raise ResourceUnavailable(
                f"AntiBERTy file {needed}", f"the installed antiberty {pkg_version} lacks it; {_INSTALL}"
            )
    return files


def weights_identity(files: AntibertyFiles | None = None) -> str:
    files = files or antiberty_files()
    # not weights.file_sha256, which caches the digest beside the file: here in site-packages
    return f"antiberty=={files.version}:sha256:{sha256_file_once(files.weights)}"


def load_tokenizer(files: AntibertyFiles | None = None) -> Any:
    """AntiBERTy's ``BertTokenizer`` (``vocab=``, not ``vocab_file=``: see the module docstring)."""
    from transformers import BertTokenizer

    files = files or antiberty_files()
    return BertTokenizer(vocab=str(files.vocab), do_lower_case=False)


def load_model(
    init: str, seed: int | None, files: AntibertyFiles | None = None, protocol: str = "plmtransfer"
) -> tuple[Any, dict[str, Any]]:
    """``(BertModel on CPU, extra identity facts)`` for ``init`` under ``protocol``. ``random``
    under plmtransfer reads only ``config.json``; everything else loads the full checkpoint."""
    from transformers import BertConfig, BertModel

    from pytest_plmtransfer.measure.protocol import get_protocol
    from pytest_plmtransfer.models.hf import check_loading_info, quiet_transformers
    from pytest_plmtransfer.models.inits import ablate, build_seeded

    rules = get_protocol(protocol)
    files = files or antiberty_files()
    if init not in ("pretrained", "random", "stat"):
        raise PlmTransferError(f"{NAME}: unknown init {init!r}")
    with quiet_transformers():
        if init == "random" and rules.ablation == "constructor":
            config = BertConfig.from_pretrained(str(files.model_dir))
            model = build_seeded(lambda: BertModel(config, add_pooling_layer=False), seed)
            return model, {"protocol": rules.name}
        loaded: Any = BertModel.from_pretrained(str(files.model_dir), add_pooling_layer=False, output_loading_info=True)
        model, info = loaded
        check_loading_info(info, f"AntiBERTy ({files.model_dir})")
    return model, ablate(model, init, seed, rules, "generic")


def create_antiberty(name: str, init: str, seed: int | None, options: Any) -> HFAdapter:
    """Registry factory for ``antiberty``."""
    import transformers

    from pytest_plmtransfer.models.hf import HFAdapter, ResidueTokenizer, config_summary

    files = antiberty_files()
    tokenizer = ResidueTokenizer(load_tokenizer(files), model_name=NAME)
    hf_tok = tokenizer.tokenizer
    if tokenizer.prefix != [hf_tok.cls_token_id] or tokenizer.suffix != [hf_tok.sep_token_id]:
        raise PlmTransferError(
            f"{NAME}: expected [CLS] residues [SEP], the tokenizer gives prefix {tokenizer.prefix} "
            f"and suffix {tokenizer.suffix} (transformers {transformers.__version__})"
        )
    model, extra = load_model(init, seed, files, options.protocol)
    config = {**config_summary(model.config), **extra, "unknown_residues_as_unk": "XBZUO"}
    return HFAdapter(
        model,
        tokenizer,
        options,
        name=NAME,
        init=init,
        seed=seed,
        weights_identity=weights_identity(files),
        config=config,
        max_residues=MAX_RESIDUES,
        alphabet=ALPHABET,
        library_versions={"antiberty": files.version},
    )


def describe(name: str, options: Any) -> ModelDescription:
    """The ``config.json`` shipped in the antiberty wheel (the package is not imported)."""
    desc = hf_config_description(antiberty_files().model_dir / "config.json", special_tokens=2)
    return dataclasses.replace(desc, max_residues=MAX_RESIDUES)


def register(registry: Any) -> None:
    registry.register(
        NAME,
        create_antiberty,
        description="AntiBERTy (BERT, 8 layers, 512-d) with the weights antiberty==0.1.3 ships",
        describe=describe,
    )
