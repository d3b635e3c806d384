"""Exercise answers, checked without being written down (every notebook's exercises; lh.check_answer).

Not taught by any notebook, so it lives here rather than in lenet5_helpers, which re-exports
`check_answer` for the notebooks' `lh.check_answer("03-1", value)`.
"""

from __future__ import annotations

import hashlib

# exercise: (the answer's fingerprint, decimals compared, a hint). The fingerprint is the start of
# the sha256 of "<exercise>=<answer rounded>", so reading this file does not give the answer away.
ANSWERS = {
    "01-2": ("a053e3c88337d3d1", 0,
             "torch.bincount(train_raw.targets) counts each digit; which count is smallest?"),
    "01-3": ("5b8aaddf6bc4adee", 2,
             "the std of x_train * 0.5 + 0.5 (32x32, in [0, 1]), not of the 28x28 bytes."),
    "02-1": ("baa4f1f694e17ac6", 0,
             "with padding P the side is (W - 5 + 2P) + 1; which W gives conv1 its 28 outputs?"),
    "02-2": ("0f9550786e5bf710", 0, "each conv2 filter then has 3 x 5 x 5 weights, plus one bias."),
    "03-1": ("a93154f244bf25b7", 2, "a uniform guess gives the right digit 1/10; the loss is -ln of that."),
    "03-5": ("8ef037a3eb9e6fa1", 0, "55,000 images in batches of 512; the last, smaller batch counts too."),
    "04-2": ("99a7b082aa429af4", 0, "0.95 % of 10,000 digits; an error rate is 1 - accuracy."),
    "05-1": ("ce3c022f9cee3b1a", 0, "the global batch stays 128, whatever the number of ranks."),
    "05-4": ("49e559e496b52571", 3, "weigh each rank's mean by its number of images, then divide by 128."),
    "06-1": ("a50f9eb855ee4b0a", 0,
             "the longer side of the box becomes 20; the other is scaled by the same factor, then rounded."),
}


def check_answer(exercise: str, value: float) -> bool:
    """Say whether `value` answers `exercise` ("01-2"), with a hint if not (every notebook's exercises).

    The value is rounded to the decimals the exercise asks for and fingerprinted like the stored
    answer: equal fingerprints mean the same rounded number, without the answer being written here.
    """
    if exercise not in ANSWERS:
        raise ValueError(f"exercise={exercise!r} has no stored answer; those that do: {', '.join(ANSWERS)}.")
    fingerprint, decimals, hint = ANSWERS[exercise]
    text = f"{float(value):.{decimals}f}"
    right = hashlib.sha256(f"{exercise}={text}".encode()).hexdigest()[:16] == fingerprint
    print(f"{exercise}: {text} is right." if right else f"{exercise}: {text} is not it. Hint: {hint}")
    return right
