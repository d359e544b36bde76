"""Plain-words explanations of every diagnostic the report shows (rendered as title= tooltips).

Keys are the names the report prints, so the template can look a tooltip up by the visible text.
"""

from __future__ import annotations

GLOSSARY: dict[str, str] = {
    # the encoder
    "linear-probe accuracy": "Share of test samples a logistic regression on the frozen embeddings classifies correctly. Labels are used only for this check, never by a lens.",
    "k-NN accuracy": "Share of test samples whose 20 nearest training embeddings (cosine) vote for the right class.",
    "collapse check": "Spread of the normalised embeddings (mean per-dimension standard deviation × √d): about 1 is spread out, near 0 means every input maps to nearly the same point (collapse).",
    "training loss": "The SSL objective's loss, averaged over each epoch's batches.",
    # KREPES
    "representer landmark": "A training sample whose kernel coefficient pulls (attracts) or pushes (repels) the test point's representation; KREPES ranks them by influence score.",
    "influence score": "How much a landmark moves the test point's representation in the kernel surrogate (|IS|); shown relative to the strongest landmark of the same test point.",
    "attracts": "The landmark pulls the test point's representation towards its own.",
    "repels": "The landmark pushes the test point's representation away from its own.",
    "fidelity": "How closely the kernel surrogate that KREPES explains behaves like the network itself. Landmarks explain the network only as far as the surrogate is faithful.",
    "Kendall τ": "Rank correlation between the network's and the surrogate's similarities to the test points (1 = same order of neighbours, 0 = unrelated). The report trusts ≥ 0.8, reads 0.6–0.8 as partial.",
    "Kendall τ (centred)": "Kendall τ with the network's embeddings centred first, which removes the shared mean direction that inflates or deflates raw cosine similarities.",
    "Δ accuracy": "Linear-probe accuracy of the surrogate minus that of the network (0 = the surrogate carries the same class information).",
    "precision@1": "Share of test points whose strongest landmark has the same label as the test point.",
    "cosine baseline": "precision@1 of the nearest training embedding by cosine similarity: what KREPES should beat.",
    "confidence drop": "How much the probe's confidence in the right class falls when the top-10 landmarks are removed, against removing 10 random training samples.",
    "distinct top-1 landmarks": "How many different training samples are somebody's strongest landmark. Very few means 'hub' landmarks that explain every input alike.",
    "λ": "Damping of the Gauss–Newton step, as a multiple of the mean curvature eigenvalue.",
    "Feature Alignment Gap": "How much more often a test point and its landmarks share a feature value than chance would give (normalised: 0 = chance, 1 = always). High for a feature means the representation groups samples by it.",
    "group anchoring": "P(group of the strongest landmark | group of the test point), beside the group's base rate among landmarks. A bright diagonal means samples are explained by their own group.",
    "landmark norm": "Size of the landmark's coefficient ‖ΔÃ_l‖: landmarks with large coefficients shape many representations.",
    # influence
    "self-influence": "How much a training sample's own loss depends on the sample itself (label-free augmentation loss, EK-FAC curvature). High: atypical, hard to predict from the rest — outliers, rare styles, mislabelled or corrupted data.",
    "duplicate score": "Normalised pairwise influence of two training samples (cosine of their influence directions): near 1 the encoder treats them as the same example.",
    "Cliff's δ": "Effect size of a group difference: the probability that a random member of the group scores higher than a random member of the other, minus the reverse (−1 … 1; |δ| ≥ 0.33 is a medium effect).",
    # RELAX
    "RELAX importance": "How much the representation changes when a pixel is hidden, averaged over random masks (brighter = the encoder depends on it more).",
    "uncertainty": "Standard deviation of the importance over the masks: where it is high, the map is less certain.",
    "U-RELAX": "The importance where it is certain: pixels whose uncertainty is below the threshold.",
    "deletion AUC": "Similarity of the representation to the original as the most important pixels are removed first: lower means the map found the pixels that matter.",
    "insertion AUC": "Similarity as the most important pixels are put back first into an empty image: higher is better.",
    "sanity check": "Maps of a randomly re-initialised encoder should look different from the trained encoder's; if they correlate strongly, the map shows the input, not what the encoder learned.",
    # Q-Score
    "Q-Score": "Label-free quality of a sample's representation: how strongly its few discriminative features stand out (high = clear, low = likely misclassified downstream).",
    "AUPRC": "Area under the precision–recall curve for telling correctly from wrongly classified samples; its floor is the prevalence (share of correct samples), not 0.5.",
    "AUROC": "Probability that a random correctly classified sample scores higher than a random misclassified one (0.5 = chance).",
    "prevalence": "Share of test samples the linear probe classifies correctly: the AUPRC of a random score.",
    "discriminative features": "Embedding dimensions that fire strongly (z-score above ε) for a small set of samples; Q-Score reads these.",
    "ε": "Threshold on the feature z-score that makes a feature 'highly activating', chosen without labels.",
    # SimVAE
    "content": "What the views of one sample share (the class, in these data).",
    "style": "What differs between views (rotation, scale, brightness, flips).",
}


# names of table rows and columns
GLOSSARY.update(
    {
        "learning rate": "AdamW's learning rate at the end of the epoch (linear warm-up, then cosine decay).",
        "Kendall τ ceiling": "The Kendall τ the surrogate could reach at best with this kernel (an upper reference for the headline τ).",
        "Kendall τ (raw)": "Kendall τ without centring the network's embeddings.",
        "confidence drop, top-10 removed": "Fall of the probe's confidence in the right class when the test point's ten strongest landmarks are removed from the training set.",
        "confidence drop, 10 random removed": "The same when ten random training samples are removed: the top-10 drop should be much larger.",
        "network probe accuracy": "Linear-probe accuracy on the network's embeddings (on the rows the fidelity check uses).",
        "surrogate probe accuracy": "Linear-probe accuracy on the kernel surrogate's embeddings.",
        "λ chosen by": "How the step's damping was chosen: a label-free rule, or fixed by the command.",
        "SSL loss before the step": "The SSL loss of the kernel model at its starting point.",
        "SSL loss after the step": "The SSL loss after the Gauss–Newton step: lower means the step moved the kernel model the way training would.",
        "landmarks (m)": "How many training samples serve as landmarks of the Nyström kernel approximation.",
        "Nyström rank": "Rank r of the Nyström approximation of the kernel.",
        "linearised output": "What the eNTK linearises and the Gauss–Newton step applies the SSL loss to: the backbone representation (default) or, with --linearise projector, the projector's output the loss was applied to in training.",
        "eNTK parameters": "The parameters whose gradients form the kernel when it is restricted to a subset (--kernel-params): the preset or module names, and how many of the encoder's parameters they hold.",
        "per-layer gradient projection": "Each Conv2d / Linear layer's weight gradient projected to k×k by seeded per-layer matrices on its inputs and output gradients (--layer-projection-dim), so a big backbone's kernel fits in memory.",
        "kernel error against the full eNTK": "‖K_approx − K_full‖ / ‖K_full‖ on a seeded sample, where K_full uses every parameter without projection (--kernel-fidelity-sample). 0 = the same kernel.",
        "landmark agreement with the full eNTK": "On the same sample: the share of each query's top landmarks by |k| that the full eNTK ranks top too (1 = the same landmarks).",
        "kernel": "The empirical neural tangent kernel's reduction: pntk (sum of outputs) or trntk (trace over outputs).",
        "landmark selection": "How landmarks were chosen (uniform, kernel k-means++ or ridge leverage; all label-free).",
        "training samples in the step": "Training samples (two augmented views each) the Gauss–Newton step used.",
        "gap (normalised)": "Feature Alignment Gap on the 0 (chance) … 1 (always shared) scale.",
        "gap (raw)": "Share of landmark pairs agreeing on the feature minus the chance agreement.",
        "chance agreement": "How often two random training samples share the feature's value.",
        "95% low": "Lower end of the bootstrap 95% interval.",
        "95% high": "Upper end of the bootstrap 95% interval.",
        "P(landmark group | test group)": "Share of the group's test points whose strongest landmark belongs to the column's group.",
        "base rate": "Share of that group among all strongest landmarks: what P would be if the group did not matter.",
        "effect": "Whether the landmark attracts (pulls towards) or repels (pushes away) the test point's representation.",
        "coefficient (of the largest)": "The landmark's coefficient norm ‖ΔÃ_l‖ relative to the largest one.",
        "complexity": "Entropy of the map's normalised importance: lower means the map concentrates on fewer pixels.",
        "sparseness": "Gini index of the map's importance: higher means a sparser, more focused map.",
        "p (Mann–Whitney U)": "Probability of a difference at least this large if the groups did not differ (two-sided Mann–Whitney U test).",
        "p (Holm)": "The same p-value corrected for testing several groups (Holm).",
        "share of features kept": "Fraction of the embedding's features kept for the probe.",
        "exactly the discriminative ones": "Whether the kept features are exactly those Q-Score calls discriminative.",
        "accuracy, random features": "Linear-probe accuracy with the same number of randomly chosen features.",
        "features kept": "Number of embedding features kept.",
        "curvature": "How influence approximates the loss curvature: EK-FAC or K-FAC (kronfluence), or identity (plain gradient dot products).",
        "training samples scored": "Training samples whose self-influence was computed (a seeded subsample when fewer than all).",
    }
)


def tip(term: str) -> str:
    """The tooltip of a visible term ('' when it has none)."""
    return GLOSSARY.get(term, "")
