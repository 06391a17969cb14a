"""Synthetic published-format network pickles for the importer tests.

The files use the official variable names and shapes (official StyleGAN2 TensorFlow 1 pickles
and StyleGAN2-ADA PyTorch pickles) with random weights, and reference the official globals
(``dnnlib.tflib.network.Network``, ``torch._utils._rebuild_tensor_v2`` …) without those modules
being installed: a pickler subclass writes chosen module/name pairs for our stand-in objects.
The layouts are written out here from the originals' conventions, independently of the
importer's mapping code, so the tests check that mapping rather than repeat it.
"""
from __future__ import annotations

import collections
import io
import math
import pickle
import struct
import types
from typing import Any

import numpy as np

TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


class _GlobalNamingPickler(pickle._Pickler):
    """Pure-Python pickler that writes chosen (module, name) pairs for given objects."""

    dispatch = dict(pickle._Pickler.dispatch)

    def __init__(self, f: io.BytesIO, names: dict[int, tuple[str, str]], protocol: int = 4,
                 persistent: Any = None) -> None:
        super().__init__(f, protocol=protocol)
        self._names = names
        self._persistent = persistent

    def persistent_id(self, obj: Any) -> Any:
        return self._persistent(obj) if self._persistent else None

    def save_global(self, obj: Any, name: str | None = None) -> None:
        key = self._names.get(id(obj))
        if key is None:
            return super().save_global(obj, name)
        module, qualname = key
        if self.proto >= 4:
            self.save(module)
            self.save(qualname)
            self.write(pickle.STACK_GLOBAL)
        else:
            self.write(pickle.GLOBAL + f"{module}\n{qualname}\n".encode())
        self.memoize(obj)

    dispatch[types.FunctionType] = lambda self, obj: self.save_global(obj)


def dumps(obj: Any, names: dict[Any, tuple[str, str]], protocol: int = 4) -> bytes:
    f = io.BytesIO()
    _GlobalNamingPickler(f, {id(k): v for k, v in names.items()}, protocol).dump(obj)
    return f.getvalue()


# -- official StyleGAN2 (TensorFlow 1) ---------------------------------------------------------


class FakeTFNetwork:
    """Pickles like ``dnnlib.tflib.network.Network``: NEWOBJ of the class, then its state."""

    def __init__(self, state: dict[str, Any]) -> None:
        self._state = state

    def __getstate__(self) -> dict[str, Any]:
        return self._state


TF_NAMES = {FakeTFNetwork: ("dnnlib.tflib.network", "Network")}


def tf_nf(stage: int, fmap_base: int, fmap_max: int) -> int:
    return int(np.clip(int(fmap_base / (2.0 ** stage)), 1, fmap_max))


def tf_variables(resolution: int = 32, latent: int = 32, dlatent: int = 32, mapping_layers: int = 2,
                 fmap_base: int = 512, fmap_max: int = 64, seed: int = 0
                 ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray],
                            dict[str, np.ndarray]]:
    """Random (G top, mapping, synthesis, D) variables with the official names and shapes."""
    rng = np.random.default_rng(seed)
    log2 = int(math.log2(resolution))

    def nf(stage: int) -> int:
        return tf_nf(stage, fmap_base, fmap_max)

    def rnd(*shape: int, scale: float = 1.0) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    top = {"lod": np.float32(0.0), "dlatent_avg": rnd(dlatent)}
    mapping = {}
    for i in range(mapping_layers):
        mapping[f"Dense{i}/weight"] = rnd(latent if i == 0 else dlatent, dlatent, scale=100)
        mapping[f"Dense{i}/bias"] = rnd(dlatent)
    syn: dict[str, np.ndarray] = {}
    for i in range(2 * log2 - 3):
        r = 2 ** ((i + 5) // 2)
        syn[f"noise{i}"] = rnd(1, 1, r, r)

    def modconv(scope: str, cin: int, cout: int, k: int, noise: bool) -> None:
        syn[f"{scope}/weight"] = rnd(k, k, cin, cout)
        syn[f"{scope}/mod_weight"] = rnd(dlatent, cin)
        syn[f"{scope}/mod_bias"] = rnd(cin, scale=0.1)
        if noise:
            syn[f"{scope}/noise_strength"] = rnd(scale=0.2)
        syn[f"{scope}/bias"] = rnd(cout, scale=0.1)

    syn["4x4/Const/const"] = rnd(1, nf(1), 4, 4)
    modconv("4x4/Conv", nf(1), nf(1), 3, True)
    modconv("4x4/ToRGB", nf(1), 3, 1, False)
    for res in range(3, log2 + 1):
        s = f"{2 ** res}x{2 ** res}"
        modconv(f"{s}/Conv0_up", nf(res - 2), nf(res - 1), 3, True)
        modconv(f"{s}/Conv1", nf(res - 1), nf(res - 1), 3, True)
        modconv(f"{s}/ToRGB", nf(res - 1), 3, 1, False)
    disc: dict[str, np.ndarray] = {}
    for res in range(log2, 2, -1):
        s = f"{2 ** res}x{2 ** res}"
        if res == log2:
            disc[f"{s}/FromRGB/weight"], disc[f"{s}/FromRGB/bias"] = rnd(1, 1, 3, nf(res - 1)), \
                rnd(nf(res - 1), scale=0.1)
        disc[f"{s}/Conv0/weight"] = rnd(3, 3, nf(res - 1), nf(res - 1))
        disc[f"{s}/Conv0/bias"] = rnd(nf(res - 1), scale=0.1)
        disc[f"{s}/Conv1_down/weight"] = rnd(3, 3, nf(res - 1), nf(res - 2))
        disc[f"{s}/Conv1_down/bias"] = rnd(nf(res - 2), scale=0.1)
        disc[f"{s}/Skip/weight"] = rnd(1, 1, nf(res - 1), nf(res - 2))
    disc["4x4/Conv/weight"], disc["4x4/Conv/bias"] = rnd(3, 3, nf(1) + 1, nf(1)), rnd(nf(1))
    disc["4x4/Dense0/weight"], disc["4x4/Dense0/bias"] = rnd(nf(1) * 16, nf(0)), rnd(nf(0))
    disc["Output/weight"], disc["Output/bias"] = rnd(nf(0), 1), rnd(1)
    return top, mapping, syn, disc


def tf_network(name: str, func: str, variables: dict[str, np.ndarray], static_kwargs: dict,
               components: dict | None = None) -> FakeTFNetwork:
    return FakeTFNetwork({
        "version": 4, "name": name, "static_kwargs": dict(static_kwargs),
        "components": dict(components or {}),
        "build_module_src": "raise RuntimeError('this source must never run')\n",
        "build_func_name": func, "variables": list(variables.items())})


def tf_pickle(top, mapping, syn, disc, resolution: int = 32, latent: int = 32, dlatent: int = 32,
              mapping_layers: int = 2, fmap_base: int = 512, fmap_max: int = 64,
              extra_g_kwargs: dict | None = None, with_d: bool = True) -> bytes:
    """An official-format ``(G, D, Gs)`` pickle (G and Gs share the weights here)."""
    kw = dict(num_channels=3, resolution=resolution, label_size=0, latent_size=latent,
              dlatent_size=dlatent, mapping_layers=mapping_layers, mapping_fmaps=dlatent,
              fmap_base=fmap_base, fmap_max=fmap_max, architecture="skip")
    kw.update(extra_g_kwargs or {})

    def g(name: str) -> FakeTFNetwork:
        num_ws = 2 * int(math.log2(resolution)) - 2
        comps = {"synthesis": tf_network("G_synthesis", "G_synthesis_stylegan2", syn, kw),
                 "mapping": tf_network("G_mapping", "G_mapping", mapping,
                                       dict(kw, dlatent_broadcast=num_ws))}
        return tf_network(name, "G_main", top, dict(kw, truncation_psi=0.5), comps)

    d = tf_network("D", "D_stylegan2", disc,
                   dict(num_channels=3, resolution=resolution, label_size=0, fmap_base=fmap_base,
                        fmap_max=fmap_max, mbstd_group_size=4))
    if not with_d:
        return dumps(g("Gs"), TF_NAMES)
    return dumps((g("G"), d, g("Gs")), TF_NAMES)


# -- StyleGAN2-ADA (PyTorch) -------------------------------------------------------------------


def _rebuild_tensor_v2(*args): raise AssertionError("stand-in, never called")  # noqa: E704
def _rebuild_parameter(*args): raise AssertionError("stand-in, never called")  # noqa: E704
def _load_from_bytes(*args): raise AssertionError("stand-in, never called")  # noqa: E704
def _reconstruct_persistent_obj(*args): raise AssertionError("stand-in, never called")  # noqa


class _FloatStorageType:
    """Stand-in for the class ``torch.FloatStorage`` inside a storage's bytes."""


class FakeEasyDict(dict):
    """Pickles as ``dnnlib.util.EasyDict``."""


ADA_NAMES = {_rebuild_tensor_v2: ("torch._utils", "_rebuild_tensor_v2"),
             _rebuild_parameter: ("torch._utils", "_rebuild_parameter"),
             _load_from_bytes: ("torch.storage", "_load_from_bytes"),
             _reconstruct_persistent_obj: ("torch_utils.persistence",
                                           "_reconstruct_persistent_obj"),
             _FloatStorageType: ("torch", "FloatStorage"),
             FakeEasyDict: ("dnnlib.util", "EasyDict")}


def storage_bytes(flat: np.ndarray, zip_format: bool = False) -> bytes:
    """What ``torch.save(storage)`` writes for a float32 storage (legacy or zip format)."""
    flat = np.ascontiguousarray(flat, dtype="<f4").ravel()
    marker = object()
    pid = ("storage", _FloatStorageType, "0", "cpu", int(flat.size))
    names = {id(_FloatStorageType): ADA_NAMES[_FloatStorageType]}
    if zip_format:
        import zipfile

        f = io.BytesIO()
        _GlobalNamingPickler(f, names, 2, lambda o: pid if o is marker else None).dump(marker)
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as z:
            z.writestr("archive/data.pkl", f.getvalue())
            z.writestr("archive/data/0", flat.tobytes())
        return out.getvalue()
    f = io.BytesIO()
    for header in (TORCH_LEGACY_MAGIC, 1001, {"protocol_version": 1001, "little_endian": True,
                                              "type_sizes": {"short": 2, "int": 4, "long": 4}}):
        pickle.dump(header, f, protocol=2)
    _GlobalNamingPickler(f, names, 2, lambda o: (*pid, None) if o is marker else None).dump(marker)
    pickle.dump(["0"], f, protocol=2)
    f.write(struct.pack("<q", flat.size))
    f.write(flat.tobytes())
    return f.getvalue()


class FakeTensor:
    """Pickles like a CPU float tensor (``_rebuild_tensor_v2`` over a storage)."""

    def __init__(self, array: np.ndarray, parameter: bool = True, zip_format: bool = False,
                 transposed_storage: bool = False) -> None:
        self.array, self.parameter, self.zip_format = np.asarray(array, np.float32), parameter, \
            zip_format
        self.transposed_storage = transposed_storage

    def __reduce__(self):
        a = self.array
        if self.transposed_storage and a.ndim == 2:
            # Store column-major to exercise non-trivial strides.
            storage = _FakeStorage(a.T.ravel(), self.zip_format)
            stride = (1, a.shape[0])
        else:
            storage = _FakeStorage(a.ravel(), self.zip_format)
            stride = tuple(int(np.prod(a.shape[i + 1:])) for i in range(a.ndim))
        tensor = (_rebuild_tensor_v2, (storage, 0, tuple(a.shape), stride, False,
                                       collections.OrderedDict()))
        if not self.parameter:
            return tensor
        return (_rebuild_parameter, (_Reduced(tensor), False, collections.OrderedDict()))


class _Reduced:
    def __init__(self, reduced: tuple) -> None:
        self.reduced = reduced

    def __reduce__(self):
        return self.reduced


class _FakeStorage:
    def __init__(self, flat: np.ndarray, zip_format: bool) -> None:
        self.flat, self.zip_format = flat, zip_format

    def __reduce__(self):
        return (_load_from_bytes, (storage_bytes(self.flat, self.zip_format),))


class FakeModule:
    """Pickles like a StyleGAN2-ADA persistent module."""

    def __init__(self, class_name: str, params: dict, buffers: dict, modules: dict,
                 attrs: dict | None = None, init_kwargs: dict | None = None) -> None:
        self.meta = {"type": "class", "version": 6, "class_name": class_name,
                     "module_src": "raise RuntimeError('this source must never run')\n",
                     "state": {"training": False, "_parameters": collections.OrderedDict(params),
                               "_buffers": collections.OrderedDict(buffers),
                               "_non_persistent_buffers_set": set(),
                               "_forward_hooks": collections.OrderedDict(),
                               "_modules": collections.OrderedDict(modules),
                               "_init_args": (), "_init_kwargs": dict(init_kwargs or {}),
                               **(attrs or {})}}

    def __reduce__(self):
        return (_reconstruct_persistent_obj, (self.meta,))


def fir_filter() -> np.ndarray:
    k = np.array([1, 3, 3, 1], np.float32)
    k = np.outer(k, k)
    return k / k.sum()


def ada_from_tf(top, mapping, syn, disc, resolution: int = 32) -> tuple[dict, dict]:
    """ADA ``state_dict`` arrays equal to given TF variables, by the conversion rules of
    NVIDIA's legacy converter: [out, in] dense weights, [out, in, kh, kw] kernels, the
    upsampling kernel flipped, +1 on modulation biases, the constant without its batch axis."""
    log2 = int(math.log2(resolution))
    g: dict[str, np.ndarray] = {"mapping.w_avg": top["dlatent_avg"]}
    for key, value in mapping.items():
        i, var = key[len("Dense"):].split("/")
        g[f"mapping.fc{i}.{var}"] = value.T if var == "weight" else value
    g["synthesis.b4.const"] = syn["4x4/Const/const"][0]

    def layer(prefix: str, scope: str, noise: str | None, flip: bool) -> None:
        w = syn[f"{scope}/weight"]
        g[f"{prefix}.weight"] = (w[::-1, ::-1] if flip else w).transpose(3, 2, 0, 1).copy()
        g[f"{prefix}.bias"] = syn[f"{scope}/bias"]
        g[f"{prefix}.affine.weight"] = syn[f"{scope}/mod_weight"].T
        g[f"{prefix}.affine.bias"] = syn[f"{scope}/mod_bias"] + 1
        if noise is not None:
            g[f"{prefix}.noise_strength"] = syn[f"{scope}/noise_strength"]
            g[f"{prefix}.noise_const"] = syn[noise][0, 0]

    layer("synthesis.b4.conv1", "4x4/Conv", "noise0", False)
    layer("synthesis.b4.torgb", "4x4/ToRGB", None, False)
    for res in range(3, log2 + 1):
        r = 2 ** res
        layer(f"synthesis.b{r}.conv0", f"{r}x{r}/Conv0_up", f"noise{2 * res - 5}", True)
        layer(f"synthesis.b{r}.conv1", f"{r}x{r}/Conv1", f"noise{2 * res - 4}", False)
        layer(f"synthesis.b{r}.torgb", f"{r}x{r}/ToRGB", None, False)
    d: dict[str, np.ndarray] = {}
    names = {"FromRGB": "fromrgb", "Conv0": "conv0", "Conv1_down": "conv1", "Skip": "skip",
             "4x4/Conv": "conv", "4x4/Dense0": "fc", "Output": "out"}
    for key, value in disc.items():
        scope, var = key.rsplit("/", 1)
        if scope.startswith("4x4/") or scope == "Output":
            ours = f"b4.{names[scope]}.{var}"
        else:
            res, layer_name = scope.split("/")
            ours = f"b{res.split('x')[0]}.{names[layer_name]}.{var}"
        d[ours] = value.transpose(3, 2, 0, 1).copy() if value.ndim == 4 else (
            value.T.copy() if value.ndim == 2 else value)
    return g, d


def _module_tree(arrays: dict[str, np.ndarray], class_names: dict[str, str],
                 attrs: dict[str, dict], init_kwargs: dict[str, dict], buffers: set[str],
                 prefix: str = "", zip_format: bool = False) -> FakeModule:
    """Nest flat ``state_dict`` arrays into FakeModules (``class_names`` by module path)."""
    own = {k: v for k, v in arrays.items() if "." not in k}
    children: dict[str, dict] = collections.OrderedDict()
    for k, v in arrays.items():
        if "." in k:
            head, rest = k.split(".", 1)
            children.setdefault(head, {})[rest] = v
    params = {k: FakeTensor(v, parameter=k not in buffers, zip_format=zip_format,
                            transposed_storage=(k == "weight"))
              for k, v in own.items()}
    buf = {k: params.pop(k) for k in list(params) if k in buffers}
    mods = {name: _module_tree(sub, class_names, attrs, init_kwargs, buffers,
                               f"{prefix}{name}.", zip_format)
            for name, sub in children.items()}
    path = prefix.rstrip(".")
    return FakeModule(class_names.get(path, "Module"), params, buf, mods, attrs.get(path),
                      init_kwargs.get(path))


def ada_pickle(g_arrays: dict, d_arrays: dict | None, resolution: int = 32, z_dim: int = 32,
               w_dim: int = 32, mapping_layers: int = 2, channel_base: int = 1024,
               channel_max: int = 64, c_dim: int = 0, zip_format: bool = False,
               extra: dict | None = None) -> bytes:
    """An ADA-format ``{G, D, G_ema, …}`` pickle holding the given state_dict arrays, with a
    ``resample_filter`` buffer on every layer that has one in the original."""
    g_arrays = dict(g_arrays)
    log2 = int(math.log2(resolution))
    g_classes = {"": "Generator", "mapping": "MappingNetwork", "synthesis": "SynthesisNetwork"}
    g_attrs: dict[str, dict] = {
        "": dict(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, img_resolution=resolution,
                 img_channels=3, num_ws=2 * log2 - 2),
        "mapping": dict(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, num_layers=mapping_layers,
                        w_avg_beta=0.995)}
    for i in range(mapping_layers):
        g_classes[f"mapping.fc{i}"] = "FullyConnectedLayer"
        g_attrs[f"mapping.fc{i}"] = dict(activation="lrelu", bias_gain=0.01,
                                         weight_gain=np.float64(0.01 / math.sqrt(w_dim)))
    for res in range(2, log2 + 1):
        r = 2 ** res
        block = f"synthesis.b{r}"
        g_classes[block] = "SynthesisBlock"
        g_attrs[block] = dict(architecture="skip", resolution=r)
        g_arrays[f"{block}.resample_filter"] = fir_filter()
        for layer in (["conv1"] if r == 4 else ["conv0", "conv1"]):
            g_classes[f"{block}.{layer}"] = "SynthesisLayer"
            g_attrs[f"{block}.{layer}"] = dict(activation="lrelu", use_noise=True, resolution=r,
                                               up=1 if layer == "conv1" else 2)
            g_arrays[f"{block}.{layer}.resample_filter"] = fir_filter()
            g_classes[f"{block}.{layer}.affine"] = "FullyConnectedLayer"
        g_classes[f"{block}.torgb"] = "ToRGBLayer"
        g_classes[f"{block}.torgb.affine"] = "FullyConnectedLayer"
    g_buffers = {"w_avg", "noise_const", "resample_filter"}
    g_init = {"": dict(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, img_resolution=resolution,
                       img_channels=3, mapping_kwargs=FakeEasyDict(num_layers=mapping_layers),
                       synthesis_kwargs=FakeEasyDict(channel_base=channel_base,
                                                     channel_max=channel_max))}
    g = _module_tree(g_arrays, g_classes, g_attrs, g_init, g_buffers, zip_format=zip_format)
    data: dict[str, Any] = {"G": g, "G_ema": g, "augment_pipe": None,
                            "training_set_kwargs": FakeEasyDict(resolution=resolution)}
    if d_arrays is not None:
        d_arrays = dict(d_arrays)
        d_classes = {"": "Discriminator", "b4": "DiscriminatorEpilogue",
                     "b4.mbstd": "MinibatchStdLayer"}
        d_attrs = {"": dict(c_dim=c_dim, img_resolution=resolution, img_channels=3),
                   "b4": dict(architecture="resnet", cmap_dim=0)}
        for res in range(log2, 2, -1):
            d_classes[f"b{2 ** res}"] = "DiscriminatorBlock"
            d_attrs[f"b{2 ** res}"] = dict(architecture="resnet")
            d_arrays[f"b{2 ** res}.resample_filter"] = fir_filter()
            for layer in ("conv1", "skip"):
                d_arrays[f"b{2 ** res}.{layer}.resample_filter"] = fir_filter()
        d = _module_tree(d_arrays, d_classes, d_attrs,
                         {"": dict(c_dim=c_dim, img_resolution=resolution, img_channels=3,
                                   channel_base=channel_base, channel_max=channel_max)},
                         {"resample_filter"}, zip_format=zip_format)
        # The minibatch-stddev layer has no variables; add it explicitly.
        d.meta["state"]["_modules"]["b4"].meta["state"]["_modules"]["mbstd"] = FakeModule(
            "MinibatchStdLayer", {}, {}, {}, dict(group_size=4, num_channels=1))
        data["D"] = d
    data.update(extra or {})
    return dumps(data, ADA_NAMES)
