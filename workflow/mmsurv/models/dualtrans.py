"""DualTrans / CMTA (pathology + genomics): TransMIL-style encoder/decoder per modality.

Zhou & Chen, "Cross-Modal Translation and Alignment for Survival Analysis", ICCV 2023; follows
github FT-ZHOU-ZZZ/CMTA `models/cmta/network.py` (`CMTA`, model_size "small", concat fusion) and
the loss of `models/cmta/engine.py` (NLL + alpha · (L1(P.detach(), P̂) + L1(G.detach(), Ĝ))).

Missing modality (models/_missing.py): a withheld bag is one learned (1, d) token after
`path_fc`; withheld omics are G learned family tokens in place of the family SNNs' outputs. The
alignment term is then computed on them as on real tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mmsurv.models._layers import FamilyNetworks, ModelOutput, SurvModel
from mmsurv.models._missing import missing_token
from mmsurv.models._registry import register_model
from mmsurv.models._transmil_layers import TransMILEncoder, fold_copies


def _init_weights(module: nn.Module) -> None:
    """CMTA's `initialize_weights`: Xavier-normal Linear weights, zero biases, unit LayerNorm."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_normal_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class DualTrans(SurvModel):
    """Encoders (cls + Nyström layers [+ PPEG]) → cross-attention both ways → decoders → fusion.

    aux_loss = alpha · (L1(enc_cls_path.detach(), dec_cls_path) + L1(enc_cls_gen.detach(),
    dec_cls_gen)): the decoders, fed with the other modality's view, learn to reproduce the
    encoder class tokens, which are held fixed for this term.
    """

    modalities = frozenset({"path", "omic"})
    # The family SNNs and the gene encoder over their tokens (the decoders see pathology).
    omic_modules = ("sig_networks", "gen_encoder")
    accepts_missing = True
    patch_score_caption = (
        "attention: the pathology encoder's class token over the patch tokens in its last "
        "Nyström layer; decoder: the pathology decoder's class token, likewise, over the patch "
        "tokens after each patch attended to the gene families. Head means of the approximated "
        "attention rows (a square-padding copy added to its patch): each sums to about 1 over the "
        "bag, less the class token's attention to itself (and to the zero tokens padding bags "
        "shorter than the landmark count), and can be slightly negative."
    )

    def __init__(
        self,
        *,
        d: int = 256,
        omic_hidden: int = 1024,
        alpha: float = 0.5,
        attn_dropout: float = 0.1,
        num_landmarks: int | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("dropout", 0.25)
        super().__init__(**kwargs)
        if alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {alpha}")
        self.d, self.alpha = d, float(alpha)
        # CMTA "small": pathology 1024 → 256 → 256, genomics SNN(size → 1024) → SNN(1024 → 256).
        self.path_fc = nn.Sequential(
            nn.Linear(self.path_dim, d),
            nn.ReLU(),
            nn.Dropout(self.dropout),
            nn.Linear(d, d),
            nn.ReLU(),
            nn.Dropout(self.dropout),
        )
        self.sig_networks = FamilyNetworks(self.omic_sizes, d, hidden=omic_hidden)
        self.path_encoder = TransMILEncoder(
            d, ppeg=True, dropout=attn_dropout, cls_std=1e-6, num_landmarks=num_landmarks
        )
        self.path_decoder = TransMILEncoder(
            d, ppeg=True, dropout=attn_dropout, cls_std=1e-6, num_landmarks=num_landmarks
        )
        self.gen_encoder = TransMILEncoder(
            d, ppeg=False, dropout=attn_dropout, cls_std=1e-6, num_landmarks=num_landmarks
        )
        self.gen_decoder = TransMILEncoder(
            d, ppeg=False, dropout=attn_dropout, cls_std=1e-6, num_landmarks=num_landmarks
        )
        # Pathology tokens attend to gene tokens (N'×G) and gene tokens to pathology (G×N').
        self.path_in_gen = nn.MultiheadAttention(d, num_heads=1, batch_first=True)
        self.gen_in_path = nn.MultiheadAttention(d, num_heads=1, batch_first=True)
        self.mm = nn.Sequential(nn.Linear(2 * d, d), nn.ReLU(), nn.Linear(d, d), nn.ReLU())
        self.classifier = nn.Linear(d, self.n_bins)
        _init_weights(self)
        self.missing_path = missing_token(1, d)
        self.missing_omic = missing_token(len(self.omic_sizes), d, salt=1)

    @staticmethod
    def _cross(attn: nn.MultiheadAttention, q: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
        """Single-case cross-attention: (n, d) queries over (m, d) keys/values → (n, d)."""
        out, _ = attn(q.unsqueeze(0), kv.unsqueeze(0), kv.unsqueeze(0), need_weights=False)
        return out.squeeze(0)

    @staticmethod
    def _encode(
        encoder: TransMILEncoder, x: torch.Tensor, cls_attention: bool
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """encoder(x) (a module call, so its hooks run) or, for patch_scores, encoder.encode."""
        if cls_attention:
            return encoder.encode(x, cls_attention=True)
        cls, tokens = encoder(x)
        return cls, tokens, None

    def forward(
        self, path: torch.Tensor | None = None, omics: Sequence[torch.Tensor] | None = None
    ) -> ModelOutput:
        """Predict one case's hazards; aux_loss is CMTA's weighted L1 alignment term."""
        self.check_inputs(path, omics)
        return self._run(path, omics)[0]

    def _run(
        self,
        path: torch.Tensor | None,
        omics: Sequence[torch.Tensor] | None,
        *,
        cls_attention: bool = False,
    ) -> tuple[ModelOutput, dict[str, torch.Tensor]]:
        """The forward pass; with cls_attention also the two pathology class-token attentions.

        Returned as {"attention": encoder, "decoder": decoder}, each (n',) over the square-padded
        pathology tokens (TransMILEncoder.encode); empty without cls_attention.
        """
        p = self.missing_path if path is None else self.path_fc(path)  # (N, d)
        g = self.missing_omic if omics is None else self.sig_networks(omics)  # (G, d)

        # (1, d), (⌈√N⌉², d) incl. the square padding
        cls_p_enc, tok_p, att_enc = self._encode(self.path_encoder, p, cls_attention)
        cls_g_enc, tok_g = self.gen_encoder(g)  # (1, d), (G, d)
        cls_p_dec, _, att_dec = self._encode(
            self.path_decoder, self._cross(self.path_in_gen, tok_p, tok_g), cls_attention
        )
        cls_g_dec, _ = self.gen_decoder(self._cross(self.gen_in_path, tok_g, tok_p))

        # CMTA's concat fusion averages each modality's encoder and decoder class tokens.
        h = torch.cat([(cls_p_enc + cls_p_dec) / 2, (cls_g_enc + cls_g_dec) / 2], dim=1)
        logits = self.classifier(self.mm(h))
        aux = self.alpha * (
            F.l1_loss(cls_p_dec, cls_p_enc.detach()) + F.l1_loss(cls_g_dec, cls_g_enc.detach())
        )
        scores = {}
        if att_enc is not None and att_dec is not None:
            scores = {"attention": att_enc, "decoder": att_dec}
        return ModelOutput.from_logits(logits, aux_loss=aux), scores

    @torch.no_grad()
    def patch_scores(
        self, path: torch.Tensor, omics: Sequence[torch.Tensor] | None = None
    ) -> dict[str, torch.Tensor]:
        """Class-token attention on each patch in the pathology encoder and decoder (caption)."""
        path = self.check_score_inputs(path, omics)
        _, scores = self._run(path, omics, cls_attention=True)
        return {k: fold_copies(v, path.shape[0]).float() for k, v in scores.items()}


@register_model
def dualtrans(**kwargs: Any) -> DualTrans:
    """CMTA's dual transformer baseline (pathology + genomics)."""
    return DualTrans(**kwargs)
