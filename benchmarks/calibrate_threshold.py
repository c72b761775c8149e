"""Calibrate the clustering threshold of an embedder on hand-written skill names.

The data below was written for this project: paraphrase groups of skill names the
way an annotator LLM varies them ("computing molar mass" / "calculating molar
mass" / "molar mass calculation"), organised in families of *distinct but
related* skills (molar mass vs. molarity vs. limiting reagent), plus single
names that are related to a family but are a different skill. The ground truth
is one label per group; a singleton is its own group.

For each threshold on a grid, both clustering methods (`ours` and the paper's
`reference`) are run and scored by the adjusted Rand index (ARI) against the
ground truth. On a set this size ARI moves by ±0.02 between neighbouring
thresholds, so the chosen threshold maximises ARI averaged over a ±0.02 window
(the raw maximum is printed too). A two-fold check (choose on the even
families, score on the odd ones, and vice versa) shows how much the choice
depends on the particular names.

    python benchmarks/calibrate_threshold.py                   # MiniLM (default)
    python benchmarks/calibrate_threshold.py --model PATH      # another sentence-transformers model
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from skill_assets.analysis.slices import adjusted_rand_index, cluster_skill_names  # noqa: E402

# Families are separated by a line "## family"; each further line is one skill:
# paraphrases separated by " | " (a line with one name is a distinct singleton).
DATA = """
## general skill areas (level 0 names are short and alike)
mathematical reasoning | math reasoning | mathematics | quantitative reasoning | mathematical problem solving
logical reasoning | logic | reasoning logically | applying logic
visual reasoning | visual understanding | reasoning about images | image understanding
code reasoning | reasoning about code | code understanding | program comprehension
reading comprehension | text comprehension | understanding written passages | comprehending a text
scientific knowledge | science knowledge | knowledge of science | science
everyday knowledge | general world knowledge | world knowledge | general knowledge
professional knowledge | domain expertise | specialized professional knowledge | expert domain knowledge
## subject areas
chemistry | chemical knowledge | knowledge of chemistry | chemistry concepts
physics | knowledge of physics | physics concepts | physical principles
biology | biological knowledge | knowledge of biology | biology concepts
microeconomics | microeconomic analysis | microeconomic theory | microeconomic concepts
macroeconomics | macroeconomic analysis | macroeconomic theory | macroeconomic concepts
classical mechanics | Newtonian mechanics | Newtonian physics
modern physics | quantum and relativistic physics | twentieth-century physics
geometric optics | ray optics | optics of lenses and mirrors
wave optics | physical optics | interference and diffraction of light
number theory | elementary number theory | properties of integers
calculus | differential and integral calculus | calculus concepts
geometry | geometric reasoning | plane geometry
physical commonsense | intuitive physics | commonsense about physical objects
social commonsense | commonsense about social situations | social reasoning about people
literal comprehension | understanding explicitly stated information | literal reading comprehension
inferential comprehension | inferential reading comprehension | reading between the lines
medical knowledge | medicine | clinical knowledge
legal reasoning | law | legal knowledge
software engineering | software development | building software systems
international economics
political geography
precalculus
## stoichiometry
computing molar mass | calculating molar mass | molar mass calculation | determining the molar mass of a compound | finding molar mass
computing molarity | calculating molarity of a solution | molarity calculation | determining solution molarity
identifying the limiting reagent | finding the limiting reactant | limiting reagent identification | determining which reactant is limiting
balancing chemical equations | chemical equation balancing | balancing a chemical reaction equation | balancing reaction equations
converting grams to moles | grams-to-moles conversion | converting mass to moles | mass to mole conversion
computing percent yield | calculating percentage yield | percent yield calculation
calculating empirical formula from percent composition
## thermochemistry and equilibrium
applying Hess's law | using Hess's law | Hess's law application | applying Hess's law to reaction enthalpies
calculating equilibrium constants | computing the equilibrium constant | equilibrium constant calculation | determining Kc from concentrations
applying Le Chatelier's principle | using Le Chatelier's principle | Le Chatelier's principle application | predicting equilibrium shifts with Le Chatelier's principle
calculating pH | computing pH of a solution | pH calculation | determining the pH
calculating pOH from hydroxide concentration
computing Gibbs free energy change
## organic chemistry
naming organic compounds | IUPAC nomenclature of organic compounds | organic compound nomenclature | applying IUPAC naming rules
identifying functional groups | functional group identification | recognizing functional groups in molecules | spotting functional groups
predicting products of substitution reactions | predicting SN1 and SN2 reaction products | substitution reaction product prediction
identifying chiral centers
## mechanics
applying Newton's second law | using Newton's second law | Newton's second law application | applying F = ma | using F=ma to relate force and acceleration
applying conservation of momentum | using conservation of momentum | momentum conservation | conservation of linear momentum
applying conservation of energy | using energy conservation | conservation of mechanical energy | energy conservation principle
calculating kinetic energy | computing kinetic energy | kinetic energy calculation | finding kinetic energy of an object
analyzing projectile motion | projectile motion analysis | solving projectile motion problems | projectile trajectory calculation
drawing free body diagrams | free-body diagram construction | constructing a free body diagram | sketching free body diagrams
calculating torque | computing torque | torque calculation
calculating gravitational potential energy
computing centripetal acceleration
## electricity and waves
applying Ohm's law | using Ohm's law | Ohm's law application | applying V = IR
analyzing series and parallel circuits | series and parallel circuit analysis | combining resistors in series and parallel | computing equivalent resistance
applying Kirchhoff's laws | using Kirchhoff's circuit laws | Kirchhoff's voltage and current laws | applying KVL and KCL
calculating wave speed | computing wave speed from frequency and wavelength | wave speed calculation
applying Snell's law | using Snell's law for refraction | Snell's law application
calculating electric power dissipated in a resistor
applying Coulomb's law
## arithmetic
adding fractions | fraction addition | adding fractions with unlike denominators | summing fractions
multiplying decimals | decimal multiplication | multiplying decimal numbers
computing percentages | calculating percentages | percentage calculation | finding a percentage of a number | percent computation
performing long division | long division | dividing numbers using long division
calculating percentage increase and decrease | percent change calculation | computing percent change | percentage change computation
rounding numbers | rounding to the nearest whole number | number rounding
finding the least common multiple | computing the LCM | least common multiple calculation | LCM computation
finding the greatest common divisor | computing the GCD | greatest common factor calculation | GCD computation
converting fractions to decimals
simplifying fractions
## algebra
solving linear equations | linear equation solving | solving equations of the first degree | solving a linear equation for x
solving quadratic equations | quadratic equation solving | solving quadratics | finding roots of a quadratic equation
factoring quadratic expressions | factoring quadratics | quadratic factorization | factorizing quadratic polynomials
solving systems of linear equations | solving simultaneous equations | linear system solving | solving a system of two linear equations
simplifying algebraic expressions | algebraic expression simplification | simplifying expressions | combining like terms
applying the quadratic formula | using the quadratic formula | quadratic formula application
manipulating exponents | applying exponent rules | using laws of exponents | exponent rules
solving linear inequalities
computing the slope of a line
evaluating logarithms
## geometry
calculating the area of a triangle | computing triangle area | triangle area calculation | finding the area of a triangle
applying the Pythagorean theorem | using the Pythagorean theorem | Pythagorean theorem application | using a^2 + b^2 = c^2
calculating the circumference of a circle | computing circle circumference | circumference calculation
calculating the area of a circle | computing the area of a circle | circle area calculation | finding the area of a circle
calculating the volume of a cylinder | cylinder volume calculation | computing cylinder volume
using similar triangles | similar triangle reasoning | applying properties of similar triangles | triangle similarity
computing angles in a triangle | using the triangle angle sum | angle sum of a triangle
calculating the volume of a sphere
calculating the surface area of a cube
## calculus
computing derivatives | differentiating functions | calculating derivatives | taking the derivative | differentiation
applying the chain rule | using the chain rule | chain rule application | differentiating composite functions
computing definite integrals | evaluating definite integrals | definite integral calculation | integrating over an interval
evaluating limits | computing limits | limit evaluation | finding the limit of a function
finding local extrema | locating maxima and minima | optimization using derivatives | finding critical points to optimize a function
applying integration by parts
computing partial derivatives
## probability and statistics
calculating probability | computing probabilities | probability calculation | determining the probability of an event
computing conditional probability | conditional probability calculation | calculating conditional probabilities | finding P(A given B)
applying Bayes' theorem | using Bayes' theorem | Bayes' rule application | Bayesian updating with Bayes' rule
calculating the mean | computing the average | finding the arithmetic mean | averaging values | mean calculation
calculating standard deviation | computing standard deviation | standard deviation calculation | finding the standard deviation
counting combinations | computing combinations | using combinations to count | calculating n choose k
counting permutations | computing permutations | permutation counting | arranging objects in order
interpreting a p-value | p-value interpretation | understanding p-values | reading statistical significance from a p-value
computing expected value | calculating expected value | expected value calculation | expectation of a random variable
finding the median
calculating the variance
## biology
understanding photosynthesis | knowledge of photosynthesis | photosynthesis process | explaining photosynthesis
understanding cellular respiration | knowledge of cellular respiration | cellular respiration process | explaining aerobic respiration
applying Mendelian genetics | Mendelian inheritance | using Punnett squares | predicting offspring genotypes with Punnett squares
understanding DNA replication | knowledge of DNA replication | DNA replication process | explaining how DNA is copied
understanding protein synthesis | transcription and translation | knowledge of protein synthesis | gene expression from DNA to protein
identifying cell organelles | cell organelle identification | recognizing parts of a cell | knowledge of organelle functions
understanding natural selection | knowledge of evolution by natural selection | natural selection concepts | explaining adaptation through natural selection
understanding mitosis
understanding meiosis
knowledge of the human immune system
## medicine
interpreting electrocardiograms | ECG interpretation | reading an ECG | EKG interpretation
diagnosing from symptoms | symptom-based diagnosis | clinical diagnosis from presenting symptoms | differential diagnosis
knowledge of pharmacology | understanding drug mechanisms of action | pharmacological knowledge | drug mechanism knowledge
interpreting blood test results | lab result interpretation | reading laboratory values | interpreting blood work
knowledge of human anatomy | anatomical knowledge | understanding human anatomy | anatomy knowledge
calculating drug dosages
## law
applying constitutional law | constitutional law application | interpreting constitutional provisions | knowledge of constitutional law
applying contract law | contract law principles | analyzing contract formation | knowledge of contract law
applying tort law | tort law analysis | analyzing negligence claims | knowledge of torts
applying criminal law | criminal law analysis | knowledge of criminal law | analyzing elements of a crime
applying rules of evidence | evidence law | knowledge of evidentiary rules | analyzing admissibility of evidence
understanding separation of powers
applying property law
## economics and business
analyzing supply and demand | supply and demand analysis | understanding supply and demand | applying supply and demand
calculating price elasticity | computing price elasticity of demand | elasticity calculation | price elasticity of demand
calculating GDP | computing gross domestic product | GDP calculation | measuring GDP
computing compound interest | calculating compound interest | compound interest calculation | applying the compound interest formula
calculating net present value | computing NPV | net present value calculation | discounting cash flows
understanding monetary policy | knowledge of monetary policy | central bank monetary policy | monetary policy concepts
reading a balance sheet | balance sheet analysis | interpreting a balance sheet | analyzing balance sheet items
calculating simple interest
computing the inflation rate
## history and social science
knowledge of World War II | World War II history | understanding World War II events | WWII historical knowledge
knowledge of the French Revolution | French Revolution history | understanding the French Revolution | history of the French Revolution
knowledge of the American Civil War | American Civil War history | understanding the Civil War | US Civil War knowledge
recalling historical dates | remembering historical dates | historical date recall | knowledge of historical chronology
knowledge of ancient Rome | Roman history | understanding ancient Roman history | history of the Roman Empire
knowledge of the Cold War
knowledge of the Industrial Revolution
## geography
identifying countries on a map | locating countries on a map | map reading to find countries | recognizing countries from a map
knowledge of world capitals | recalling capital cities | capital city knowledge | knowing national capitals
reading latitude and longitude | using geographic coordinates | interpreting latitude and longitude | coordinate reading on maps
knowledge of climate zones | understanding climate zones | climate zone classification | identifying climate regions
knowledge of major rivers
## programming
tracing code execution | code tracing | simulating program execution | stepping through code by hand | mentally executing code
understanding Python syntax | Python syntax knowledge | knowledge of Python syntax | reading Python syntax
analyzing time complexity | time complexity analysis | computing Big O complexity | determining algorithmic complexity | Big-O analysis
understanding recursion | recursion | reasoning about recursive functions | tracing recursive calls
debugging code | identifying bugs in code | finding errors in code | code debugging
writing SQL queries | SQL query writing | composing SQL queries | constructing SQL statements
understanding string slicing in Python | Python string slicing | slicing strings in Python
understanding hash tables
implementing binary search
understanding object-oriented programming
## logic and reasoning
applying deductive reasoning | deductive reasoning | using deductive logic | drawing deductive conclusions
evaluating syllogisms | syllogistic reasoning | assessing syllogisms | analyzing categorical syllogisms
identifying logical fallacies | recognizing logical fallacies | fallacy identification | spotting fallacies in arguments
constructing truth tables | truth table construction | building truth tables | evaluating truth tables
process of elimination | eliminating incorrect options | ruling out answer choices | elimination of wrong answers
recognizing number patterns | identifying numerical patterns | number sequence pattern recognition | finding the next number in a sequence
applying inductive reasoning
reasoning about counterfactuals
## reading and language
identifying the main idea | finding the main idea of a passage | main idea identification | determining the central idea of a text
making inferences from text | drawing inferences from a passage | textual inference | inferring implicit information from text
understanding vocabulary in context | inferring word meaning from context | vocabulary in context | using context clues to define words
identifying the author's purpose | determining the author's purpose | author's purpose identification | recognizing why the author wrote the passage
subject-verb agreement | applying subject-verb agreement rules | checking subject-verb agreement | subject verb agreement in sentences
choosing the correct verb tense | verb tense selection | using correct verb tenses | identifying the appropriate tense
identifying figurative language | recognizing figurative language | figurative language identification | spotting metaphors and similes
translating between languages
summarizing a passage
## visual perception
reading a bar chart | bar chart interpretation | interpreting bar graphs | extracting values from a bar chart
reading a line graph | line graph interpretation | interpreting line charts | reading trends from a line graph
counting objects in an image | object counting | counting items in a picture | enumerating objects in an image
recognizing text in an image | optical character recognition | reading text from an image | OCR
identifying colors | color recognition | recognizing object colors | color identification in images
understanding spatial relationships | spatial reasoning | reasoning about relative positions | identifying spatial relations between objects
recognizing facial expressions | facial expression recognition | identifying emotions from faces | reading facial emotions
reading a pie chart
interpreting a scatter plot
reading a table
estimating object size in an image
## commonsense and ethics
applying commonsense knowledge | commonsense reasoning | using everyday knowledge | everyday commonsense inference
understanding social norms | knowledge of social conventions | social norm reasoning | understanding etiquette
moral reasoning | ethical reasoning | evaluating moral dilemmas | applying ethical principles
reasoning about time and scheduling | temporal reasoning | reasoning about durations and times | time calculation
understanding cause and effect | causal reasoning | identifying cause and effect | reasoning about causes and effects
unit conversion | converting units | converting between units of measurement | unit conversions
estimating quantities
reading a clock
## psychology and philosophy
knowledge of classical conditioning | understanding classical conditioning | Pavlovian conditioning | classical conditioning concepts
knowledge of operant conditioning | understanding operant conditioning | reinforcement and punishment in operant conditioning | operant conditioning concepts
knowledge of cognitive biases | understanding cognitive biases | identifying cognitive biases | recognizing cognitive biases
understanding utilitarianism | knowledge of utilitarian ethics | utilitarian reasoning | applying utilitarianism
understanding Kantian ethics | knowledge of Kant's categorical imperative | deontological ethics | applying the categorical imperative
knowledge of Piaget's stages of development
understanding the philosophy of mind
"""


def load_groups(text: str = DATA) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(names, group label per name, family id per name)."""
    names: list[str] = []
    groups: list[int] = []
    families: list[int] = []
    family = -1
    g = 0
    for line in text.strip().splitlines():
        line = line.strip()
        if not line:
            continue
        if line.startswith("##"):
            family += 1
            continue
        for name in (x.strip() for x in line.split("|")):
            names.append(name)
            groups.append(g)
            families.append(family)
        g += 1
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"duplicate names in the calibration data: {dup}")
    return names, np.asarray(groups), np.asarray(families)


def score(vectors, names, labels, thresholds, method) -> np.ndarray:
    out = []
    for t in thresholds:
        cl = cluster_skill_names(names, vectors, threshold=float(t), method=method)
        out.append(adjusted_rand_index(labels, cl["cluster_id"].to_numpy()))
    return np.asarray(out)


def smooth(ari: np.ndarray, half: int = 2) -> np.ndarray:
    """ARI averaged over a window of ±half grid steps (shrinking at the ends)."""
    return np.array([ari[max(0, i - half) : i + half + 1].mean() for i in range(len(ari))])


def choose(grid: np.ndarray, ari: np.ndarray) -> float:
    return float(grid[int(np.argmax(smooth(ari)))])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="all-MiniLM-L6-v2", help="sentence-transformers model")
    ap.add_argument("--lo", type=float, default=0.45)
    ap.add_argument("--hi", type=float, default=0.96)
    ap.add_argument("--step", type=float, default=0.01)
    args = ap.parse_args()

    from skill_assets.resources.embedder import Embedder

    names, labels, families = load_groups()
    emb = Embedder(model=args.model)
    t0 = time.perf_counter()
    vecs = emb.encode(names)
    n_groups = len(set(labels.tolist()))
    singles = int((np.bincount(labels) == 1).sum())
    print(
        f"embedder {emb.name}: {len(names)} names, {n_groups} skills "
        f"({n_groups - singles} paraphrase groups, {singles} distinct singletons), "
        f"{len(set(families.tolist()))} families; embedded in {time.perf_counter() - t0:.1f} s"
    )

    # Similarity structure: paraphrase pairs vs. different skills in the same family.
    sims = vecs @ vecs.T
    iu = np.triu_indices(len(names), 1)
    same = labels[iu[0]] == labels[iu[1]]
    fam = (families[iu[0]] == families[iu[1]]) & ~same
    q = [5, 25, 50, 75, 95]
    print("cosine percentiles", q)
    print("  same skill (paraphrases)     ", np.round(np.percentile(sims[iu][same], q), 3))
    print("  different skill, same family ", np.round(np.percentile(sims[iu][fam], q), 3))
    print("  different family             ", np.round(np.percentile(sims[iu][~same & ~fam], q), 3))
    nearest_other = np.where(labels[:, None] == labels[None, :], -1.0, sims).max(1)
    print(
        "  nearest other-skill name, median / 95th pct:",
        np.round(np.percentile(nearest_other, [50, 95]), 3),
    )

    grid = np.round(np.arange(args.lo, args.hi + 1e-9, args.step), 3)
    res = {m: score(vecs, names, labels, grid, m) for m in ("ours", "reference")}
    print("\nthreshold  ARI ours  ARI reference")
    for i, t in enumerate(grid):
        print(f"{t:9.2f}  {res['ours'][i]:8.3f}  {res['reference'][i]:13.3f}")
    for m in ("ours", "reference"):
        best = int(np.argmax(res[m]))
        t = choose(grid, res[m])
        print(
            f"{m}: chosen threshold {t:.2f} (ARI {res[m][grid == t][0]:.3f}, "
            f"window mean {smooth(res[m])[grid == t][0]:.3f}); "
            f"raw maximum {res[m][best]:.3f} at {grid[best]:.2f}"
        )

    # Two-fold check over families: choose on one half, score on the other.
    print("\ntwo-fold over families (choose on one half, ARI on the other), ours:")
    for half in (0, 1):
        pick = families % 2 == half
        ri, ro = np.flatnonzero(pick), np.flatnonzero(~pick)
        ari_in = score(vecs[ri], [names[i] for i in ri], labels[ri], grid, "ours")
        t = choose(grid, ari_in)
        ari_out = score(vecs[ro], [names[i] for i in ro], labels[ro], [t], "ours")[0]
        print(
            f"  chosen on {'even' if half == 0 else 'odd'} families: {t:.2f} "
            f"(ARI {ari_in[grid == t][0]:.3f}); on the other half ARI {ari_out:.3f}"
        )


if __name__ == "__main__":
    main()
