#!/usr/bin/env python3
"""Write the synthetic demo datasets of Adapter Studio into assets/datasets/.

Every sentence is generated here from templates, word lists and random variation written
for this project: nothing is downloaded and no corpus is copied. The generator uses only
the Python standard library and fixed seeds, so running it twice writes byte-identical
files.

Usage:  python3 scripts/make_demo_datasets.py [--out assets/datasets]

Tasks (train / validation / test):
  sentiment/      CSV   text,label                 negative|positive               600/100/100
  topic/          JSONL {"text","label"}           sports|technology|food|travel|finance 600/100/100
  nli/            TSV   index sentence1 sentence2 label  entailment|neutral|contradiction 600/100/100
  review_rating/  CSV   text,label                 negative|mixed|positive           100/100/100
  ner/            JSONL {"tokens","tags"}          BIO over PER, LOC, ORG            400/80/80
  similarity/     CSV   sentence1,sentence2,score  float in [0, 5]                   400/80/80
  emotions/       JSONL {"text","labels"}          0-3 of joy|anger|sadness|surprise|fear 400/80/80
"""

import argparse
import csv
import io
import itertools
import json
import os
import random
import re
import sys
from collections import Counter

SEED = 20240611
SPLITS = ("train", "validation", "test")


# --------------------------------------------------------------------------------------
# small text helpers
# --------------------------------------------------------------------------------------

def cap(s):
    return s[:1].upper() + s[1:] if s else s


def tidy(s):
    """Collapse spaces, fix spacing before punctuation, capitalise sentence starts."""
    s = re.sub(r"\s+", " ", s).strip()
    s = re.sub(r"\s+([,.;:!?])", r"\1", s)
    s = re.sub(r"([.!?])\1+", r"\1", s)
    s = re.sub(r",\s*,", ",", s)
    s = re.sub(r"\.\s*,", ",", s)
    # capitalise the first letter and every letter that follows ". ", "! " or "? "
    s = cap(s)
    s = re.sub(r'([.!?]["\']? )([a-z])', lambda m: m.group(1) + m.group(2).upper(), s)
    s = re.sub(r"\bi(?='| )", "I", s)
    return s


def ensure_end(s):
    s = s.rstrip()
    if s and s[-1] not in '.!?"':
        s += "."
    return s


def n_words(s):
    return len(s.split())


def pick(rng, seq):
    return seq[rng.randrange(len(seq))]


def fill(rng, template, slots):
    """Replace every {name} in template with a random choice from slots[name]."""
    def rep(m):
        key = m.group(1)
        val = slots[key]
        if isinstance(val, (list, tuple)):
            val = pick(rng, val)
        if callable(val):
            val = val(rng)
        return val
    return re.sub(r"\{(\w+)\}", rep, template)


def balanced_labels(rng, labels, n):
    """n labels, as equal as possible, shuffled."""
    out = [labels[i % len(labels)] for i in range(n)]
    rng.shuffle(out)
    return out


def generate_classification(rng, labels, sizes, make, seen, min_words=4, max_words=64):
    """For each split, draw balanced labels and call make(rng, label) until a new text."""
    result = {}
    for split in SPLITS:
        TOPIC_STATE["split"] = split
        rows = []
        for label in balanced_labels(rng, labels, sizes[split]):
            for _ in range(2000):
                text = make(rng, label)
                key = text.lower()
                if key in seen or not (min_words <= n_words(text) <= max_words):
                    continue
                seen.add(key)
                rows.append((text, label))
                break
            else:
                raise RuntimeError("could not generate a new example for %r" % label)
        result[split] = rows
    return result


# --------------------------------------------------------------------------------------
# 1. sentiment: product and movie reviews, negative / positive
# --------------------------------------------------------------------------------------

# (name, plural, features): features pick the aspects that make sense for the product
PRODUCTS = [
    ("blender", False, "kitchen"), ("coffee maker", False, "kitchen"), ("vacuum cleaner", False, "elec"),
    ("headphones", True, "audio"), ("earbuds", True, "audio"), ("running shoes", True, "wear"),
    ("office chair", False, "furn"), ("backpack", False, "wear"), ("electric kettle", False, "kitchen"),
    ("wireless speaker", False, "audio"), ("desk lamp", False, "furn"), ("air fryer", False, "kitchen"),
    ("keyboard", False, "elec"), ("smartwatch", False, "batt"), ("rain jacket", False, "wear"),
    ("bed sheets", True, "wear"), ("frying pan", False, "kitchen"), ("stroller", False, "furn"),
    ("printer", False, "elec"), ("phone charger", False, "elec"), ("tent", False, "wear"),
    ("hiking boots", True, "wear"), ("toaster", False, "kitchen"), ("e-reader", False, "batt"),
    ("suitcase", False, "furn"), ("webcam", False, "elec"),
]
NONGRADABLE = {"mediocre", "subpar", "first-rate", "top-notch", "really good", "pretty bad",
               "outstanding", "superb", "excellent", "fantastic", "brilliant", "dreadful", "awful",
               "terrible", "wonderful", "shoddy", "lousy"}
MOVIES = [
    ("film", False), ("movie", False), ("sequel", False), ("documentary", False),
    ("thriller", False), ("comedy", False), ("animated feature", False), ("remake", False),
    ("horror movie", False), ("period drama", False), ("sci-fi epic", False),
    ("romantic comedy", False), ("crime drama", False), ("musical", False), ("war film", False),
]
# (aspect, plural, features it applies to; "" = every product)
PRODUCT_ASPECTS = [
    ("the battery life", False, "audio batt"), ("the sound quality", False, "audio"),
    ("the build quality", False, ""), ("the price", False, ""), ("the instructions", True, "elec kitchen furn batt"),
    ("customer support", False, ""), ("the design", False, ""), ("the materials", True, ""),
    ("the buttons", True, "elec audio batt kitchen"), ("the setup", False, "elec audio batt"),
    ("the packaging", False, ""), ("the delivery", False, ""), ("the finish", False, "kitchen furn elec"),
    ("the warranty", False, "elec audio batt kitchen furn"), ("the controls", True, "elec kitchen"),
    ("the weight", False, ""), ("the colour", False, ""), ("the app that comes with it", False, "audio batt"),
    ("the fit", False, "wear"), ("the fabric", False, "wear"), ("the comfort", False, "wear furn audio"),
    ("the noise level", False, "kitchen elec"), ("the screen", False, "batt"),
]
MOVIE_ASPECTS = [
    ("the acting", False), ("the plot", False), ("the soundtrack", False), ("the ending", False),
    ("the pacing", False), ("the dialogue", False), ("the cinematography", False),
    ("the special effects", True), ("the characters", True), ("the script", False),
    ("the lead performance", False), ("the jokes", True), ("the twist", False),
    ("the visuals", True), ("the supporting cast", False), ("the costumes", True),
    ("the first half", False), ("the final act", False),
]
POS_ADJ = ["great", "excellent", "solid", "impressive", "fantastic", "superb", "outstanding",
           "first-rate", "wonderful", "lovely", "top-notch", "really good", "brilliant"]
NEG_ADJ = ["terrible", "awful", "poor", "disappointing", "mediocre", "dreadful", "subpar",
           "lousy", "weak", "frustrating", "pretty bad", "underwhelming"]
NOT_NEG = ["bad", "terrible", "awful", "disappointing", "bad at all", "as bad as people say"]
NOT_POS = ["great", "good", "impressive", "anything special", "good enough", "worth the hype"]
INTENS = ["", "", "", "really ", "very ", "incredibly ", "genuinely ", "pretty ", "quite ",
          "surprisingly ", "remarkably ", "truly "]
PROD_POS_WHOLE = ["excellent", "fantastic", "reliable", "well made", "great value", "a joy to use",
                  "exactly what I needed", "sturdy", "worth every penny"]
PROD_NEG_WHOLE = ["flimsy", "useless", "overpriced", "cheaply made", "unreliable",
                  "a waste of money", "a complete letdown", "a pain to use"]
MOV_POS_WHOLE = ["gripping", "moving", "charming", "brilliant", "captivating", "clever",
                 "a real treat", "beautifully made", "funny and warm"]
MOV_NEG_WHOLE = ["boring", "dull", "tedious", "predictable", "forgettable", "a mess",
                 "painfully slow", "a chore to sit through"]
DURATIONS = ["two days", "a week", "three weeks", "a month", "two months", "about ten days"]


class Item:
    def __init__(self, name, plural, kind):
        self.name, self.plural, self.kind = name, plural, kind

    def slots(self):
        p = self.plural
        return {
            "x": self.name,
            "the_x": "the " + self.name,
            "this_x": ("these " if p else "this ") + self.name,
            "one": "these" if p else "this one",
            "a_x": ("new " if p else ("an " if self.name[0] in "aeiou" else "a ")) + self.name,
            "it": "them" if p else "it",
            "It": "They" if p else "It",
            "itbe": "they are" if p else "it is",
            "Itbe": "They are" if p else "It is",
            "itsc": "they're" if p else "it's",
            "be": "are" if p else "is",
            "was": "were" if p else "was",
            "works": "work" if p else "works",
            "does": "do" if p else "does",
            "doesnt": "don't" if p else "doesn't",
        }


def aspect_sentence(rng, aspect, polarity, kind, used=None):
    name, plural = aspect[0], aspect[1]
    be = "are" if plural else "is"
    were = "were" if plural else "was"
    d = {"A": name, "be": be, "were": were, "int": INTENS, "pos": POS_ADJ, "neg": NEG_ADJ,
         "notneg": NOT_NEG, "notpos": NOT_POS, "farfrom": ["perfect", "great", "impressive", "ideal"]}
    for _ in range(30):
        t = _aspect_template(rng, polarity, kind)
        if used is None or t not in used:
            break
    if used is not None:
        used.add(t)
    return graded_fill(rng, t, d)


def graded_fill(rng, t, d):
    """fill(), but no intensifier in front of adjectives that are not gradable."""
    d = dict(d)
    for key in ("pos", "neg", "pw", "nw"):
        if key in d and isinstance(d[key], list):
            d[key] = pick(rng, d[key])
    if any(d.get(k) in NONGRADABLE or " " in str(d.get(k)) for k in ("pos", "neg", "pw", "nw") if "{" + k + "}" in t):
        d["int"] = ""
    return fill(rng, t, d)


def _aspect_template(rng, polarity, kind):
    if polarity == "pos":
        return pick(rng, [
            "{A} {be} {int}{pos}", "{A} {be} {int}{pos}", "I was impressed by {A}",
            "{A} {be} better than I expected", "{A} {be} not {notneg}",
            "I have no complaints about {A}", "{A} {were} a pleasant surprise",
            "{A} {be} honestly {pos}", "I loved {A}", "nothing to fault with {A}",
            "{A} {be} {int}{pos}, no question",
        ] + (["{A} really {were} something special", "I keep thinking about {A}"]
             if kind == "movie" else
             ["{A} {be} {pos} for the price", "{A} {be} exactly what I hoped for"]))
    else:
        return pick(rng, [
            "{A} {be} {int}{neg}", "{A} {be} {int}{neg}", "I was let down by {A}",
            "{A} {be} nowhere near as good as advertised", "{A} {be} not {notpos}",
            "{A} could have been much better", "{A} {be} far from {farfrom}",
            "I can't say {A} impressed me", "{A} {were} a real disappointment",
            "I had problems with {A} from day one",
        ] + (["{A} {were} hard to sit through", "{A} made no sense at all"]
             if kind == "movie" else
             ["{A} {be} {neg} for the price", "{A} {be} a constant annoyance"]))
    return t


def verdict(rng, item, polarity):
    s = item.slots()
    k = item.kind
    s.update({"int": INTENS, "pos": POS_ADJ, "neg": NEG_ADJ, "dur": DURATIONS,
              "pw": PROD_POS_WHOLE if k == "product" else MOV_POS_WHOLE,
              "nw": PROD_NEG_WHOLE if k == "product" else MOV_NEG_WHOLE,
              "rec": ["definitely ", "happily ", "absolutely ", "", "strongly "]})
    if polarity == "pos":
        common = [
            "Overall, {itbe} {int}{pos}.", "Overall, I'm {int}happy with {it}.",
            "I would {rec}recommend {it}.", "Highly recommended.", "Five stars from me.",
            "{Itbe} {int}{pw}.", "I can't think of a single thing to complain about.",
            "No regrets whatsoever.", "I'm glad I didn't listen to the negative reviews.",
            "Honestly, {itbe} not bad at all.", "Not bad at all, I have to say.",
            "I'm very pleased with {it}.", "{Itbe} easily the best {x} I've come across.",
        ]
        extra = ([
            "Worth every penny.", "I'd buy {it} again in a heartbeat.",
            "{It} {works} exactly as described.", "I've already ordered a second one for my sister.",
            "I use {it} every single day.", "It was money well spent.",
            "After {dur} of daily use, {itbe} still going strong.",
        ] if k == "product" else [
            "I'd watch {it} again tomorrow.", "Go see {it} on the biggest screen you can find.",
            "I left the cinema with a huge smile.", "Worth the price of a ticket.",
            "The two hours flew by.", "I haven't stopped thinking about {it} since.",
            "My whole family loved {it}.", "I laughed and cried, sometimes in the same scene.",
        ])
    else:
        common = [
            "Overall, {itbe} {int}{neg}.", "I would not recommend {it} to anyone.",
            "Save your money.", "One star, and that is being generous.",
            "{Itbe} {int}{nw}.", "I wanted to like {it}, but I just couldn't.",
            "What a waste of money.", "Not worth it, honestly.",
            "I can't find anything good to say about {it}.",
            "{Itbe} easily the worst {x} I've come across.", "Avoid {it} if you can.",
            "I really regret choosing {this_x}.",
        ]
        extra = ([
            "I sent {it} back after {dur}.", "{It} stopped working after {dur}.",
            "I regret buying {it}.", "Not worth the money.", "You get what you pay for.",
            "The refund took longer than the product lasted.",
        ] if k == "product" else [
            "I nearly walked out halfway through.", "I want those two hours of my life back.",
            "I checked my watch more times than I can count.", "Not worth the price of a ticket.",
            "Skip {it} and wait for something better.", "Half the audience was asleep by the end.",
        ])
    return graded_fill(rng, pick(rng, common + extra), s)


def tricky(rng, item, polarity):
    s = item.slots()
    s.update({"pos": POS_ADJ, "neg": NEG_ADJ, "int": INTENS,
              "pw": PROD_POS_WHOLE if item.kind == "product" else MOV_POS_WHOLE,
              "nw": PROD_NEG_WHOLE if item.kind == "product" else MOV_NEG_WHOLE})
    if polarity == "pos":
        t = pick(rng, [
            "I expected to hate {this_x}, but {itbe} actually {pw}.",
            "My friends said {the_x} {was} {neg}, but I honestly loved {it}.",
            "{Itbe} not perfect, but I'd still choose {it} again.",
            "The reviews were harsh, yet I found very little to dislike.",
            "I was ready to be disappointed, and I wasn't.",
            "{Itbe} far from terrible; in fact, {itsc} one of my favourites.",
            "Don't let the {neg} trailer fool you, {itbe} {pw}.",
            "Some people call {it} boring, but I couldn't look away.",
            "I didn't think I would enjoy {it}, but I was wrong.",
            "Nothing about {it} is bad, and a lot of it is {pos}.",
            "I had my doubts, but {the_x} won me over completely.",
        ] + (["Cheap doesn't have to mean bad, and {this_x} {be} proof.",
              "The box looked cheap, but what's inside is {pw}.",
              'The listing said "built to last", and so far that is true.']
             if item.kind == "product" else
             ["The trailer made {it} look silly, but {itbe} clever and often moving.",
              "It starts slowly, but stick with it, because the last hour is {pw}."]))
    else:
        t = pick(rng, [
            "I really wanted to love {this_x}, but {itbe} just {nw}.",
            "Everyone raves about {the_x}, and I have no idea why.",
            "{Itbe} not the worst {x} ever, but I can't recommend {it} either.",
            "The first impression was great, but it didn't last.",
            "I had high hopes, but {the_x} let me down.",
            "Not as good as the reviews suggest.",
            "Great idea on paper, poor execution.",
            "I tried to give {it} a fair chance, but I gave up.",
            "{It} looked {pos} at first, but the problems piled up quickly.",
            "Sure, {itsc} not awful, but {itsc} not worth your time either.",
        ] + (['The box promised "premium quality", but that is simply not true.',
              "Sure, {itsc} cheap, but you really do get what you pay for.",
              "It looks nice on the shelf, and that's about all {it} {does} well."]
             if item.kind == "product" else
             ['The poster calls it "the thriller of the year", which is a stretch.',
              "Great cast, shame about everything else.",
              "The trailer was the best part."]))
    return graded_fill(rng, t, s)


def hard_case(rng, item, polarity):
    """Verdicts whose surface words point the other way (irony, "regret", "not bad")."""
    s = item.slots()
    s.update({"dur": DURATIONS})
    if polarity == "pos":
        t = pick(rng, [
            "My only regret is not buying {it} sooner.", "I was sceptical. I'm not anymore.",
            "It's hard to find fault with {this_x}.", "I can't stop using {it}.",
            "I never thought I'd write a review, but here we are: no complaints.",
            "Forget the bad reviews; they must have got a faulty one.",
            "I hated my old {x}. This one fixed every problem I had with it.",
            "Not cheap, not flashy, and not once has {it} let me down.",
        ] if item.kind == "product" else [
            "My only regret is waiting so long to watch {it}.", "I was sceptical. I'm not anymore.",
            "It's hard to find fault with {this_x}.", "I didn't touch my phone once.",
            "Critics hated {it}, which tells you more about the critics.",
            "Not flashy, not loud, and not a minute too long.",
            "I went in expecting nothing and came out a fan.",
        ])
    else:
        t = pick(rng, [
            "Oh great, {this_x} broke on the second day. Just what I needed.",
            "The best thing about {this_x} is the box {it} came in.",
            "{It} {works} perfectly, when {it} {works} at all.",
            "If you enjoy wasting money, {this_x} {be} perfect for you.",
            "Five stars for the delivery, zero for the {x} itself.",
            "Lovely colour. Shame about everything else.",
            "I can't believe I paid for {this_x}.",
        ] if item.kind == "product" else [
            "The best thing about {this_x} is the popcorn I ate during {it}.",
            "Brilliant, if you enjoy watching paint dry.",
            "Lovely poster. Shame about everything else.",
            "I can't believe I paid to see {this_x}.",
            "Perfect if you need help falling asleep.",
            "Beautiful to look at, impossible to care about.",
        ])
    return fill(rng, t, s)


def opener(rng, item):
    s = item.slots()
    s.update({"dur": DURATIONS})
    if item.kind == "product":
        t = pick(rng, [
            "I bought {this_x} last month.", "I ordered {this_x} after reading a lot of reviews.",
            "My wife picked up {this_x} on sale.", "I've had {this_x} for {dur} now.",
            "Got {this_x} as a birthday present.", "We needed {a_x} for the flat, so I tried {one}.",
            "I replaced my old {x} with {this_x} in the spring.",
            "I use {this_x} mostly at work, a few hours a day.",
        ])
    else:
        t = pick(rng, [
            "We watched {this_x} on a rainy Sunday afternoon.",
            "I went to see {this_x} with a couple of friends on opening night.",
            "I finally caught up with {this_x} on a long flight.",
            "My kids begged me to take them to {this_x}.",
            "I streamed {this_x} last night after a long day at work.",
            "I'd heard a lot about {this_x} before finally seeing it.",
            "A friend dragged me along to {this_x} at the local cinema.",
        ])
    return fill(rng, t, s)


def make_sentiment(rng, label):
    pol = "pos" if label == "positive" else "neg"
    opp = "neg" if pol == "pos" else "pos"
    if rng.random() < 0.6:
        name, plural, feat = pick(rng, PRODUCTS)
        item = Item(name, plural, "product")
        aspects = [a for a in PRODUCT_ASPECTS if not a[2] or feat in a[2].split()]
    else:
        item = Item(*pick(rng, MOVIES), "movie")
        aspects = MOVIE_ASPECTS
    asp = rng.sample(aspects, 3)
    used = set()
    r = rng.random()
    parts = []

    def aspect_sentence(rng_, a, p, k):
        return globals()["aspect_sentence"](rng_, a, p, k, used)
    if r < 0.14:  # short verdict, maybe the thing named first
        v = verdict(rng, item, pol)
        if rng.random() < 0.5 and item.slots()["this_x"].split()[-1] not in v:
            first = v.split()[0]
            if not (first == "I" or first.startswith("I'")):
                v = v[0].lower() + v[1:]
            v = cap(item.slots()["this_x"]) + ": " + v
        parts = [v]
    elif r < 0.42:  # aspects that agree + verdict
        parts.append(ensure_end(cap(aspect_sentence(rng, asp[0], pol, item.kind))))
        if rng.random() < 0.5:
            joiner = pick(rng, [", and ", ", and ", "; also, ", " and "])
            parts[-1] = parts[-1][:-1] + joiner + aspect_sentence(rng, asp[1], pol, item.kind) + "."
        parts.append(verdict(rng, item, pol))
    elif r < 0.70:  # contrast: the clause after "but" and the verdict decide
        first = aspect_sentence(rng, asp[0], opp, item.kind)
        second = aspect_sentence(rng, asp[1], pol, item.kind)
        form = rng.randrange(4)
        if form == 0:
            parts.append(cap(first) + ", but " + second + ".")
        elif form == 1:
            parts.append("Although " + first + ", " + second + ".")
        elif form == 2:
            parts.append(ensure_end(cap(first)) + " " + cap(pick(rng, ["however, ", "still, ", "on the other hand, ", "that said, "])) + second + ".")
        else:
            parts.append(cap(second) + ", even if " + first + ".")
        parts.append(verdict(rng, item, pol))
    elif r < 0.84 and rng.random() < 0.45:  # irony and reversed keywords
        if rng.random() < 0.4:
            parts.append(opener(rng, item))
        parts.append(hard_case(rng, item, pol))
    elif r < 0.84:  # tricky framing
        if rng.random() < 0.4:
            parts.append(ensure_end(cap(aspect_sentence(rng, asp[0], pol, item.kind))))
        parts.append(tricky(rng, item, pol))
        if rng.random() < 0.3:
            parts.append(verdict(rng, item, pol))
    else:  # long multi-clause review
        parts.append(opener(rng, item))
        parts.append(cap(aspect_sentence(rng, asp[0], pol, item.kind)) + ", and " +
                     aspect_sentence(rng, asp[1], pol, item.kind) + ".")
        parts.append(cap(pick(rng, ["to be fair, ", "admittedly, ", "on the downside, ", "if I'm honest, "]
                              if pol == "pos" else ["to be fair, ", "admittedly, ", "on the plus side, ", "in fairness, "])) +
                     aspect_sentence(rng, asp[2], opp, item.kind) + ", " +
                     pick(rng, ["but that is a small thing.", "which is a shame.", "but I can live with it."]
                          if pol == "pos" else
                          ["but that doesn't save it.", "and that is the only good thing.", "though that hardly matters."]))
        parts.append(pick(rng, [tricky(rng, item, pol), verdict(rng, item, pol)]))
    return tidy(" ".join(parts))


# --------------------------------------------------------------------------------------
# 2. topic: news-like sentences, five labels
# --------------------------------------------------------------------------------------

TEAMS = ["Riverside United", "the Harbor City Hawks", "Northgate Rovers", "the Lakeside Lions",
         "Eastfield Athletic", "the Summit Falcons", "Kingsbridge", "the Bayview Sharks",
         "Westmoor Town", "the Redhill Rockets", "Ashford City", "the Pine Valley Bears"]
ATHLETES = [("Maya Lindqvist", "her"), ("Tom Okafor", "his"), ("Lucia Ferreira", "her"),
            ("Daniel Reyes", "his"), ("Aiko Tanaka", "her"), ("Samuel Mensah", "his"),
            ("Nina Kowalski", "her"), ("Ravi Sharma", "his"), ("Elena Petrova", "her"),
            ("Jonas Berg", "his")]
EVENTS = ["the marathon", "the tennis final", "the cycling tour", "the swimming championships",
          "the rugby semi-final", "the cup final", "the basketball playoffs", "the indoor athletics meeting",
          "the derby", "the ski world cup race"]
TEAM_EVENTS = ["the rugby semi-final", "the cup final", "the basketball playoffs", "the derby",
               "the league decider", "the return leg"]
RACES = ["the marathon", "the ski world cup race", "the cycling time trial", "the 10,000 metres",
         "the 200 metres freestyle", "the downhill race"]
IND_EVENTS = RACES + ["the tennis final", "the golf open", "the national championships"]
COMPANIES = ["Bluepeak Systems", "Norvik", "Kestrel Labs", "Orion Devices", "Quanta Soft",
             "Lumen Networks", "Helix Robotics", "Vertex Mobile", "Cobalt Cloud", "Nimbus Games"]
FIRMS = ["Altura Bank", "Meridian Insurance", "Grayson Retail", "Northwind Energy", "Crestline Motors",
         "Harbor Foods Group", "Silverline Media", "Atlas Airlines", "Oakmont Holdings"]
CITIES = ["Lisbon", "Kyoto", "Cape Town", "Vancouver", "Marrakech", "Edinburgh", "Hanoi",
          "Buenos Aires", "Oslo", "Naples", "Istanbul", "Melbourne", "Seville", "Prague", "Cusco"]
CHEFS = ["Marta Ruiz", "Kenji Mori", "Amara Diallo", "Paolo Conti", "Hannah Weiss", "Leila Haddad"]
DAYS = ["on Monday", "on Tuesday", "on Wednesday", "on Thursday", "on Friday", "over the weekend",
        "on Saturday", "on Sunday", "this week", "last night"]
MONTHS = ["January", "March", "April", "June", "September", "October", "November"]
PCTS = ["2%", "3.5%", "4%", "6%", "7.2%", "9%", "11%", "1.8%", "2.4%"]
AMOUNTS = ["1.2 billion dollars", "450 million euros", "3 billion dollars", "800 million pounds"]

TOPIC_SLOTS = {
    "team": TEAMS, "team2": TEAMS, "event": EVENTS, "day": DAYS, "month": MONTHS, "pct": PCTS,
    "amount": AMOUNTS, "company": COMPANIES, "firm": FIRMS, "city": CITIES, "city2": CITIES,
    "chef": CHEFS, "race": RACES, "ievent": IND_EVENTS, "tevent": TEAM_EVENTS, "n": ["six", "eight", "eleven", "fourteen", "twelve"],
    "score": ["3-1", "2-0", "4-2", "1-0", "98-91", "27-24", "2-1", "5-3"],
    "uni": ["the University of Leeds", "a lab in Zurich", "Kestrel Labs", "a university in Seoul", "a university in Toronto"],
}

TOPIC_TEMPLATES = {
    "sports": [
        "{team} beat {team2} {score} {day} to move top of the league.",
        "Runners in {race} will pass the old harbour, the cathedral and the famous fish market.",
        "{ath} credits a diet of rice, beans and plenty of sleep for {pron} best season yet.",
        "{team} flew home on a late-night flight after losing the away leg in {city}.",
        "Wearable sensors helped {team} cut injuries by a third this season.",
        "{ath} signed the biggest sponsorship deal of {pron} career before {ievent}.",
        "A new roof means {event} can go ahead whatever the weather.",
        "{team} came from two goals down to draw with {team2}.",
        "{ath} won {race} in record time {day}.",
        "{ath} announced {pron} retirement after {n} seasons with {team}.",
        "The coach said {team} would rest key players before {tevent}.",
        "{Event} was postponed because of heavy rain and will be replayed next week.",
        "A late penalty handed {team} a narrow win over {team2}.",
        "{ath} has been ruled out for six weeks with a knee injury.",
        "Fans queued outside the stadium overnight to get tickets for {event}.",
        "{team} signed the young midfielder on a four-year contract worth a reported 30 million.",
        "A controversial call in the final minute left {team} supporters furious.",
        "After three straight defeats, {team} parted ways with their manager.",
        "{ath} set a new national record in the 400 metres {day}.",
        "Organisers confirmed that {city} will host {event} next summer.",
        "{ath} served twenty aces on the way to a straight-sets victory.",
        "Ticket prices for {event} have doubled, angering many fans.",
        "The goalkeeper kept a clean sheet for the fifth game in a row as {team} won again.",
        "!{team} crushed {team2} {score}.",
        "!Injury worries for {team} ahead of {tevent}.",
        "{ath} is favourite to win {ievent}, but the weather could change everything.",
        "The young striker scored a hat-trick on his debut for {team}.",
        "{ath} crossed the finish line first and collapsed with joy.",
    ],
    "technology": [
        "{company} unveiled a new smartphone with a foldable screen and a longer battery life.",
        "A new app lets travellers point a phone at a menu and see photos of each dish.",
        "The bank's mobile app was down for six hours after a faulty software update.",
        "Football clubs are using computer vision to track every player's movements.",
        "A smart oven that recognises food with a camera went on sale {day}.",
        "Airlines are moving their booking systems to cloud servers run by {company}.",
        "A software update released {day} fixes a security flaw that affected millions of laptops.",
        "Researchers at {uni} built a chip that runs AI models on a fraction of the usual power.",
        "{company} will stop supporting its older tablets next year.",
        "The startup's app uses machine learning to translate speech in real time.",
        "Hackers exploited a bug in a popular password manager, {company} confirmed.",
        "The new version of the operating system adds stronger privacy controls.",
        "Engineers tested a delivery drone that can carry parcels of up to five kilograms.",
        "A new open-source tool helps developers find memory leaks in minutes.",
        "The carmaker pushed a software update that improves battery range in cold weather.",
        "A cloud outage at {company} left thousands of websites offline for several hours.",
        "Scientists demonstrated a quantum processor with more stable qubits.",
        "The latest smartwatch can detect an irregular heartbeat, the company said.",
        "Telecom operators began rolling out faster mobile networks in rural areas.",
        "A restaurant booking app now predicts wait times using live data from kitchens.",
        "Airports are testing facial recognition software to speed up boarding.",
        "{company} delayed its next video game to fix performance problems.",
        "!New laptop chips from {company} promise twice the speed.",
        "{company} is recalling thousands of routers after reports of overheating.",
        "Developers can now run large language models directly on a phone.",
        "The robot vacuum maps each room with a laser and learns where the furniture is.",
        "A browser extension that blocks trackers was downloaded a million times in a week.",
    ],
    "food": [
        "Chef {chef} opened a small restaurant in {city} that serves only seasonal vegetables.",
        "The airport's new food hall serves dumplings, tacos and fresh juices around the clock.",
        "Stadium snacks are getting healthier, with grilled corn and fruit cups replacing hot dogs.",
        "The price of butter has nearly doubled, so bakers are testing recipes with olive oil.",
        "A pastry chef in {city} uses a 3D printer to shape chocolate decorations.",
        "Street food in {city} is cheap, fresh and best eaten standing up.",
        "A simple tomato sauce tastes better if the garlic cooks slowly in olive oil.",
        "Critics praised the new bakery for its sourdough and cardamom buns.",
        "Nutritionists say a handful of nuts makes a better snack than a sugary cereal bar.",
        "!This week's recipe is a spicy lentil soup that is ready in thirty minutes.",
        "The restaurant lost its star after a change of head chef.",
        "A new study suggests that fermented foods like kimchi may support gut health.",
        "Home cooks are turning to air fryers for crispier vegetables with less oil.",
        "!Rest the steak for five minutes before slicing so the juices stay in the meat.",
        "The cafe's pumpkin pie sold out before noon {day}.",
        "A vegan ramen shop in {city} has become the most talked-about opening of the year.",
        "!Bake the bread at a high temperature for the first ten minutes to get a crisp crust.",
        "Chef {chef} shared her secret for fluffy pancakes: let the batter rest.",
        "Cocoa shortages mean chocolate bars are getting smaller.",
        "!Toasting the spices first gives the curry a deeper flavour.",
        "The school canteen replaced fried snacks with fresh fruit and soup.",
        "A family-run pizzeria won the national prize for the best margherita.",
        "!Soup season is here.",
        "Chef {chef} says the best pesto is made by hand, not in a blender.",
        "!Add a squeeze of lemon to the roasted vegetables just before serving.",
        "Diners waited two hours for a table at the new dumpling house in {city}.",
        "Farmers' markets are selling more heritage tomatoes than ever.",
    ],
    "travel": [
        "Visitors to {city} can now take a night train from {city2} in under ten hours.",
        "Travellers can now pay for trains, buses and ferries in {city} with a single phone app.",
        "The hotel's rooftop restaurant is a good reason to stay an extra night in {city}.",
        "Cheap flights make {city} an easy weekend trip for football fans.",
        "A weaker currency means holidays in {city} cost less this year.",
        "Visitors can watch cheese being made before touring the castle.",
        "The island reopened its hiking trails to tourists after months of repair work.",
        "Hotels in {city} are almost fully booked for the summer festival season.",
        "Travellers should expect long queues at passport control over the holiday weekend.",
        "A new direct flight connects {city} and {city2} starting in {month}.",
        "The old town's narrow streets are best explored on foot early in the morning.",
        "Backpackers are flocking to quiet mountain villages to escape the crowds.",
        "The national park now asks visitors to book entry tickets in advance.",
        "Cruise ships will be banned from docking in the historic harbour from next year.",
        "!Our guide to {city}: where to stay, what to see and how to get around on a budget.",
        "Heavy snow closed the mountain pass, stranding dozens of tourists overnight.",
        "The museum extended its opening hours to cope with the summer rush of visitors.",
        "!Experts recommend packing light and carrying a copy of your passport.",
        "A visa waiver will let tourists from twenty countries visit without applying in advance.",
        "Hikers can now stay in restored shepherd huts along the coastal trail.",
        "The airline added extra flights to {city} for the school holidays.",
        "Tourists tasted local wines on a guided tour of the valley's vineyards.",
        "Summer flights to {city} are selling out fast.",
        "Street food tours have become one of the most popular ways to see {city}.",
        "Ferries between the islands will run every hour from {month}.",
        "A quiet beach town near {city} was named the best place to visit this year.",
        "Rail passes are back, letting travellers hop between twelve countries on one ticket.",
    ],
    "finance": [
        "Shares in {firm} rose {pct} after the firm reported stronger quarterly profits.",
        "Shares of a sports streaming service climbed after it won the rights to {event}.",
        "Higher coffee prices pushed up the cost of a cafe breakfast, official figures showed.",
        "Hotel chains expect record profits as tourism recovers.",
        "The market value of {company} passed one hundred billion dollars.",
        "Food delivery firms are losing money on every order, investors warn.",
        "The central bank kept interest rates unchanged for the third month in a row.",
        "Inflation slowed to {pct} in {month}, the lowest level in two years.",
        "{firm} agreed to buy a smaller rival in a deal worth {amount}.",
        "Investors moved money into government bonds as stock markets fell.",
        "The currency weakened against the dollar after disappointing trade figures.",
        "Mortgage rates climbed again, squeezing first-time buyers.",
        "{firm} warned that profits would fall because of higher wage and energy costs.",
        "Oil prices jumped {pct} after producers agreed to cut output.",
        "A survey showed that household savings dropped for the fourth straight quarter.",
        "Atlas Airlines reported a quarterly loss as fuel costs climbed.",
        "Shares of {company} fell sharply after it cut its sales forecast.",
        "Harbor Foods Group's stock surged after the restaurant chain beat earnings estimates.",
        "Pension funds are putting more money into renewable energy projects.",
        "Unemployment edged down to {pct}, according to official figures.",
        "The club's owners are looking for investors to cover mounting debts.",
        "!Rate cut expected next month.",
        "{firm} will pay shareholders a special dividend.",
        "Analysts expect {firm} to raise its annual forecast {day}.",
        "The stock market closed at a record high {day}.",
        "Small businesses are finding it harder to get loans, the report said.",
        "Tax revenue came in {amount} below forecasts.",
    ],
}
TOPIC_PREFIX = ["", "", "", "", "", "According to local reports, ", "On the news today: ",
                "In other news, ", "Officials confirmed that ", "Reports suggest that "]
TOPIC_SUFFIX = {
    "sports": ["the team said in a statement", "the club confirmed", "according to the club"],
    "technology": ["the company said in a blog post", "analysts expect more to follow", "according to the announcement"],
    "food": ["food writers report", "according to a food magazine", "local critics say"],
    "travel": ["the tourism board said", "travel agents report", "officials said"],
    "finance": ["analysts said", "the report added", "according to the latest figures"],
}


TOPIC_STATE = {"split": "train"}
COMMON_STARTS_PROPER = {"Chef", "Atlas", "Harbor", "Our"}


def topic_sentence(rng, label, plain_only=False):
    """A filled template; templates marked "!" (headlines, tips) take no prefix or suffix."""
    templates = TOPIC_TEMPLATES[label]
    held_out = [t for i, t in enumerate(templates) if i % 4 == 3]
    seen_in_train = [t for i, t in enumerate(templates) if i % 4 != 3]
    if TOPIC_STATE["split"] == "train":
        pool = seen_in_train
    else:
        pool = held_out if rng.random() < 0.5 else seen_in_train
    while True:
        t = pick(rng, pool)
        if not (plain_only and t.startswith("!")):
            break
    marked = t.startswith("!")
    t = t.lstrip("!")
    ath, pron = pick(rng, ATHLETES)
    slots = dict(TOPIC_SLOTS)
    slots.update({"ath": ath, "pron": pron, "Event": lambda r: cap(pick(r, EVENTS))})
    s = fill(rng, t, slots)
    return ("!" if marked else "") + s


def starts_with_name(s):
    """True when the sentence opens with a proper name (keep its capital letter)."""
    first = s.split()[0]
    if first in COMMON_STARTS_PROPER:
        return True
    names = TEAMS + CITIES + COMPANIES + FIRMS + CHEFS + [a for a, _ in ATHLETES]
    return any(s.startswith(n) for n in names if not n.startswith("the "))


def lower_start(s):
    return s if starts_with_name(s) else s[0].lower() + s[1:]


def make_topic(rng, label):
    for _ in range(50):
        s = topic_sentence(rng, label)
        plain = s.startswith("!")
        s = s.lstrip("!")
        if "{" in s:
            continue
        # no "Kingsbridge beat Kingsbridge", no "from Oslo to Oslo"
        if any(s.count(name) > 1 for name in TEAMS + CITIES):
            continue
        break
    r = rng.random() if not plain else 1.0
    if r < 0.18 and n_words(s) > 6:
        pre = pick(rng, TOPIC_PREFIX)
        if pre:
            s = pre + lower_start(s)
    elif r < 0.34 and n_words(s) > 6 and ":" not in s and not re.search(r"\b(said|says|confirmed)\b", s):
        s = s[:-1] + ", " + pick(rng, TOPIC_SUFFIX[label]) + "."
    elif r < 0.50:
        other = topic_sentence(rng, label, plain_only=True).lstrip("!")
        if other != s and ":" not in other and ":" not in s and n_words(s) + n_words(other) < 55:
            s = s[:-1] + pick(rng, ["; meanwhile, ", ". Meanwhile, ", ". Separately, ", ". Also, "]) + \
                lower_start(other)
    return tidy(s)


# --------------------------------------------------------------------------------------
# 3. nli: premise / hypothesis pairs, GLUE-style TSV
# --------------------------------------------------------------------------------------

# subject: (phrase, general phrase, gender m/f/n, plural, swapped-gender phrase or None)
NLI_SUBJECTS = [
    ("A man", "A person", "m", False, "A woman"), ("A woman", "A person", "f", False, "A man"),
    ("A young boy", "A child", "m", False, "A young girl"), ("A little girl", "A child", "f", False, "A little boy"),
    ("An old man", "A man", "m", False, "An old woman"), ("An elderly woman", "A woman", "f", False, "An elderly man"),
    ("Two women", "Some people", "f", True, "Two men"), ("Three men", "A group of men", "m", True, "Three women"),
    ("A group of teenagers", "Some young people", "n", True, None),
    ("A teenage boy", "A boy", "m", False, "A teenage girl"), ("A young mother", "A woman", "f", False, "A young father"),
    ("Two children", "Some kids", "n", True, None), ("A police officer", "Someone", "n", False, None),
    ("A tall man", "A man", "m", False, "A short woman"), ("A woman with curly hair", "A woman", "f", False, "A bald man"),
]
ATTIRE = [("in a red jacket", "wearing a jacket", "in a blue jacket"),
          ("in a yellow raincoat", "wearing a coat", "in a green raincoat"),
          ("wearing a white hat", "wearing a hat", "wearing a black hat"),
          ("in a striped shirt", "wearing a shirt", "in a plain white shirt"),
          ("in running shorts", "wearing shorts", "in a long winter coat")]
# action: vp, general vp, passive/other-entailed sentence template, alternatives (contradiction),
#         neutral additions, places (keys), object noun (for "There is ..."), neutral facts
NLI_ACTIONS = [
    {"vp": "playing a guitar", "gen": "playing an instrument", "alt": ["playing a piano", "*sleeping in bed", "eating lunch"],
     "neu": ["playing a guitar for tips", "playing a song written by a friend", "practising for a concert"],
     "places": ["street", "park", "stage", "beach"], "obj": "a guitar"},
    {"vp": "riding a bicycle", "gen": "riding a bike", "alt": ["*driving a car", "sitting on a bench", "*swimming in a lake"],
     "neu": ["riding a bicycle to work", "racing a friend on a bicycle", "riding a new bicycle"],
     "places": ["street", "park", "bridge", "beach"], "obj": "a bicycle"},
    {"vp": "cooking pasta", "gen": "preparing food", "alt": ["*washing a car", "*sleeping", "reading a newspaper"],
     "neu": ["cooking pasta for a dinner party", "cooking a family recipe", "cooking pasta for the first time"],
     "places": ["kitchen", "restaurant"], "obj": "a pot of pasta"},
    {"vp": "reading a book", "gen": "reading", "alt": ["dancing", "*playing football", "*running a race"],
     "neu": ["reading a mystery novel", "reading a book for school", "reading a book about history"],
     "places": ["park", "library", "train", "cafe"], "obj": "a book"},
    {"vp": "painting a fence", "gen": "painting something", "alt": ["repairing a bicycle", "*sleeping", "*swimming"],
     "neu": ["painting a fence for a neighbour", "painting a fence white", "painting a fence to earn money"],
     "places": ["garden", "yard"], "obj": "a fence"},
    {"vp": "walking a dog", "gen": "walking with an animal", "alt": ["feeding a cat", "*driving a bus", "*sitting indoors"],
     "neu": ["walking a dog that belongs to a friend", "walking a dog before work", "walking a puppy for the first time"],
     "places": ["park", "street", "beach", "bridge"], "obj": "a dog"},
    {"vp": "selling fruit", "gen": "selling food", "alt": ["buying shoes", "*sleeping", "selling newspapers"],
     "neu": ["selling fruit to tourists", "selling fruit grown on a family farm", "selling fruit at a discount"],
     "places": ["market", "street"], "obj": "a stall of fruit"},
    {"vp": "climbing a rock wall", "gen": "climbing", "alt": ["*lying on a sofa", "*baking bread", "*sitting at a desk"],
     "neu": ["climbing a rock wall for the first time", "climbing a rock wall to train for a competition", "climbing a rock wall with an instructor"],
     "places": ["gym", "mountain"], "obj": "a climbing wall"},
    {"vp": "typing on a laptop", "gen": "using a computer", "alt": ["writing with a pencil", "*sleeping", "*swimming laps"],
     "neu": ["typing an email to a boss", "typing on a new laptop", "finishing a report on a laptop"],
     "places": ["cafe", "library", "train", "office"], "obj": "a laptop"},
    {"vp": "kicking a football", "gen": "playing with a ball", "alt": ["throwing a frisbee", "*taking a nap", "reading a book"],
     "neu": ["kicking a football to a friend", "practising penalty kicks", "kicking a brand new football"],
     "places": ["park", "beach", "street"], "obj": "a football"},
    {"vp": "taking a photo", "gen": "using a camera", "alt": ["drawing a picture", "*sleeping", "eating soup"],
     "neu": ["taking a photo for a magazine", "taking a photo of a friend", "taking a photo to post online"],
     "places": ["bridge", "beach", "market", "mountain", "street"], "obj": "a camera"},
    {"vp": "carrying a large box", "gen": "carrying something", "alt": ["sitting empty-handed", "*riding a horse", "*swimming"],
     "neu": ["carrying a box of books", "carrying a box up to a new flat", "carrying a box for a neighbour"],
     "places": ["street", "office", "yard"], "obj": "a large box"},
]
# place: phrase, general, indoor?, contradicting place phrase
NLI_PLACES = {
    "street": ("on a crowded street", "in a city", False, "in an empty room"),
    "park": ("in a sunny park", "outdoors", False, "inside a shopping mall"),
    "stage": ("on a small stage", "performing", True, "alone in a forest"),
    "beach": ("on a sandy beach", "near the sea", False, "in a snowy forest"),
    "bridge": ("on an old stone bridge", "outdoors", False, "in a basement"),
    "kitchen": ("in a tiny kitchen", "indoors", True, "on a boat at sea"),
    "restaurant": ("in a busy restaurant kitchen", "at work", True, "in a tent in the desert"),
    "library": ("in a quiet library", "indoors", True, "on a noisy football pitch"),
    "train": ("on a crowded train", "travelling", True, "in a swimming pool"),
    "cafe": ("in a small cafe", "indoors", True, "on top of a mountain"),
    "garden": ("in a back garden", "outside", False, "in an office"),
    "yard": ("in front of a house", "outside", False, "in a classroom"),
    "market": ("at an outdoor market", "outside", False, "inside a hospital"),
    "gym": ("at an indoor gym", "indoors", True, "in the open sea"),
    "mountain": ("on a mountain trail", "outdoors", False, "in a shopping centre"),
    "office": ("in an open-plan office", "at work", True, "on a beach"),
}
NLI_TIMES = ["", "", "", " early in the morning", " in the afternoon", " at night", " on a rainy day",
             " at sunset", " on a cold winter morning"]
NLI_NEUTRAL_FACTS = ["{S} {be} waiting for a friend.", "{P} {be} on holiday.", "{S} {be} in a hurry.",
                     "{P} {be} very tired.", "{S} {be} having a great time.", "{S} {be} waiting for someone.",
                     "{P} {be} happy.", "{S} {be} new in town.", "{P} {be} bored."]
NLI_ADULT_FACTS = {"m": ["The man is a teacher.", "He has just finished work."],
                   "f": ["The woman is a nurse.", "She has just finished work."]}
WHILE_CLAUSES = ["while people walk past", "while a dog watches", "as the sun goes down",
                 "while music plays in the background", "as it starts to rain", "while friends look on"]


def be(subj_plural):
    return "are" if subj_plural else "is"


def lower_first(s):
    return s[0].lower() + s[1:]


def nli_example(rng, label):
    subj, gen_subj, gender, plural, swapped = pick(rng, NLI_SUBJECTS)
    act = pick(rng, NLI_ACTIONS)
    place_key = pick(rng, act["places"])
    place, place_gen, indoor, place_alt = NLI_PLACES[place_key]
    time = pick(rng, NLI_TIMES)
    if indoor and time in (" on a rainy day", " at sunset"):
        time = ""
    attire = pick(rng, ATTIRE) if (rng.random() < 0.3 and not plural) else None
    wcl = pick(rng, WHILE_CLAUSES) if rng.random() < 0.25 else None
    if wcl and indoor and wcl in ("as the sun goes down", "as it starts to rain"):
        wcl = None
    if wcl and "dog" in wcl and "dog" in act["vp"]:
        wcl = None
    b = be(plural)
    subj_full = subj + (" " + attire[0] if attire else "")
    premise = "%s %s %s %s%s" % (subj_full, b, act["vp"], place, time)
    if wcl:
        premise += " " + wcl
    premise += "."
    if rng.random() < 0.15 and not wcl:  # past tense narrative variant
        premise = premise.replace(" is ", " was ", 1).replace(" are ", " were ", 1)
        tense_be = "was" if not plural else "were"
    else:
        tense_be = b
    the_subj = "The " + subj.split(" ", 1)[1] if subj.split(" ")[0] in ("A", "An") else \
        ("The " + subj.split(" ", 1)[1] if subj.split(" ")[0] in ("Two", "Three") else subj)
    pron = {"m": "He", "f": "She", "n": "They"}[gender] if not plural else "They"
    if not plural and gender == "n":
        pron = None
    verb = act["vp"]

    options = []
    if label == "entailment":
        options = [
            "%s %s %s." % (gen_subj, be(gen_subj.startswith(("Some", "A group")) or plural and gen_subj.startswith("Some")), act["gen"]),
            "%s %s %s." % (subj, tense_be, verb),
            "%s %s %s." % (gen_subj, be(plural if not gen_subj.startswith("A ") else False), place_gen),
            "There %s %s %s %s." % ("are" if plural else "is", lower_first(subj), verb, place),
            "%s %s not sleeping." % (the_subj, tense_be),
            "Someone is %s." % act["gen"],
        ]
        if attire:
            options += ["%s %s %s." % (subj, tense_be, attire[1])] * 2
        if wcl:
            options.append("%s %s %s %s." % (subj, tense_be, verb, wcl))
        if time.strip() in ("at night",):
            options.append("It is dark outside.")
    elif label == "contradiction":
        alt = pick(rng, act["alt"])
        free = not alt.startswith("*")
        alt = alt.lstrip("*")
        options = [
            "%s %s %s %s." % (subj, tense_be, alt, place) if free else "%s %s %s." % (subj, tense_be, alt),
            "%s %s %s." % (the_subj, tense_be, alt),
            "Nobody is %s." % verb,
            "%s %s not %s." % (the_subj, tense_be, verb),
            "%s %s %s %s." % (subj, tense_be, verb, place_alt if rng.random() < 0.3 else NLI_PLACES[pick(rng, [k for k in NLI_PLACES if k != place_key and NLI_PLACES[k][2] != indoor])][0]),
        ]
        if swapped:
            options += ["%s %s %s %s." % (swapped, tense_be, verb, place)] * 2
        if attire:
            options.append("%s %s %s %s." % (subj, attire[2], tense_be, verb))
        if indoor:
            options.append("%s %s outdoors." % (the_subj, tense_be))
        if time.strip() in ("early in the morning", "on a cold winter morning"):
            options.append("It is the middle of the night.")
        if time.strip() == "at night":
            options.append("The sun is shining brightly.")
    else:
        neu = pick(rng, act["neu"])
        options = [
            "%s %s %s." % (subj, tense_be, neu),
            "%s %s %s %s." % (subj, tense_be, neu, place),
        ]
        fact = pick(rng, NLI_NEUTRAL_FACTS)
        options += [fill(rng, fact, {"S": the_subj, "P": pron or the_subj, "be": tense_be})] * 2
        if subj in ("A man", "A woman", "A tall man", "A young mother"):
            options.append(pick(rng, NLI_ADULT_FACTS[gender]))
        options += ["%s %s %s to relax." % (subj, tense_be, verb) if not verb.startswith(("selling", "typing")) else "%s %s %s to earn extra money." % (subj, tense_be, verb)]
        if not time:
            options.append(pick(rng, ["It is a warm summer day.", "It is early evening.", "It is a weekend."]))
        if attire:
            options.append("%s %s %s that %s bought yesterday." % (subj, tense_be, attire[1], "he" if gender == "m" else ("she" if gender == "f" else "they")))
        options.append("%s %s %s for the first time." % (subj, tense_be, verb))
    groups = {" early in the morning": "m", " on a cold winter morning": "m", " in the afternoon": "a",
              " at sunset": "e", " at night": "n"}
    if label == "entailment" and time:
        options.append("%s %s %s%s." % (subj, tense_be, verb, time))
    if label == "neutral" and not time:
        options.append("%s %s %s%s." % (subj, tense_be, verb, pick(rng, sorted(groups))))
    if label == "contradiction" and time in groups:
        options.append("%s %s %s%s." % (subj, tense_be, verb, pick(rng, [t for t in sorted(groups) if groups[t] != groups[time]])))
    # shapes shared by all labels: another scene's place or activity, state words, "Someone"/"Nobody"
    other_place = pick(rng, [k for k in NLI_PLACES if k not in act["places"]])
    # activities that cannot happen at the same time as each other
    exclusive = ["playing a guitar", "cooking pasta", "reading a book", "painting a fence",
                 "climbing a rock wall", "typing on a laptop", "kicking a football", "riding a bicycle"]
    if verb in exclusive:
        other_vp = pick(rng, [v for v in exclusive if v != verb])
    else:
        other_vp = pick(rng, act["alt"]).lstrip("*")
    P = pron or the_subj
    if label == "entailment":
        options += [
            "%s %s awake." % (P, tense_be), "%s %s busy with something." % (P, tense_be),
            "%s %s not %s." % (the_subj, tense_be, other_vp),
            "Someone is %s." % (verb),
        ]
        if wcl in ("while friends look on", "while people walk past"):
            options.append("There are other people around.")
    elif label == "contradiction":
        options += [
            "%s %s %s %s." % (subj, tense_be, verb, NLI_PLACES[other_place][0]),
            "%s %s %s." % (the_subj, tense_be, other_vp),
            "%s %s asleep." % (P, tense_be), "%s %s doing nothing at all." % (P, tense_be),
            "%s %s %s to relax." % (the_subj, tense_be, other_vp),
            "Nobody is %s." % place_gen,
        ]
        if wcl in ("while friends look on", "while people walk past"):
            options.append("There is nobody else around.")
    else:
        options += [
            "%s %s not in a hurry." % (P, tense_be), "%s %s not alone." % (the_subj, tense_be) if not wcl else "%s %s not a local." % (the_subj, tense_be),
            "Someone is %s." % pick(rng, act["neu"]),
            "%s %s %s %s." % (gen_subj, "are" if gen_subj.startswith("Some") else "is", pick(rng, act["neu"]), place) if tense_be in ("is", "are") else "Somebody else is watching.",
            "Nobody is watching %s." % {"He": "him", "She": "her", "They": "them"}.get(pron, "them") if not wcl else "%s %s awake since dawn." % (P, "has been" if P in ("He", "She") or not plural and P.startswith("The") else "have been"),
            "%s %s also %s later." % (P, "is" if tense_be in ("is", "was") else "are", pick(rng, ["going to a concert", "meeting a friend", "catching a train"]))
            if tense_be in ("is", "are") else "%s %s tired." % (P, tense_be),
        ]
    hyp = pick(rng, options)
    hyp = hyp.replace("  ", " ")
    if tense_be in ("was", "were"):
        hyp = re.sub(r"\b(is|are)\b", lambda m: "was" if m.group(1) == "is" else "were", hyp, count=1)
    if indoor and "outdoors" in hyp and label == "entailment":
        return None
    return tidy(premise), tidy(hyp)


def fix_nli_grammar(s):
    # "Some people is" -> "Some people are", "A group of men is" stays singular
    s = re.sub(r"^(Some [a-z ]+?) is\b", r"\1 are", s)
    s = re.sub(r"^(Some [a-z ]+?) was\b", r"\1 were", s)
    s = s.replace("The young mother", "The mother").replace("The teenage boy", "The boy")
    s = re.sub(r"\bThe (women|men|children|teenagers)\b", r"The \1", s)
    return s


def make_nli(rng, sizes, seen):
    labels = ["entailment", "neutral", "contradiction"]
    out = {}
    for split in SPLITS:
        rows = []
        for label in balanced_labels(rng, labels, sizes[split]):
            for _ in range(2000):
                ex = nli_example(rng, label)
                if ex is None:
                    continue
                p, h = fix_nli_grammar(ex[0]), fix_nli_grammar(ex[1])
                key = (p.lower(), h.lower())
                if key in seen or p.lower() in seen:
                    continue
                seen.add(key)
                rows.append((p, h, label))
                break
            else:
                raise RuntimeError("nli: no new example")
        out[split] = rows
    return out


# --------------------------------------------------------------------------------------
# 4. review_rating: restaurant / hotel / shop reviews, negative / mixed / positive
# --------------------------------------------------------------------------------------

# Each phrase is "aspect|text"; one review never praises and criticises the same aspect.
RR_DOMAINS = {
    "restaurant": {
        "things": ["this restaurant", "the new bistro on the corner", "this little pizzeria",
                   "the hotel restaurant", "this sushi bar", "the family-run trattoria"],
        "open": ["We tried {t} last weekend.", "We went to {t} on a friend's recommendation.",
                 "I had dinner at {t} with my parents.", "We booked {t} for my birthday."],
        "pos": ["food|the food was delicious", "food|every dish was full of flavour", "food|the pasta was cooked perfectly",
                "service|our waiter was friendly and attentive", "dessert|the desserts were wonderful",
                "portions|the portions were generous", "price|the prices were very fair",
                "setting|the terrace is lovely in the evening", "wait|we got a table straight away",
                "drinks|the wine list was excellent", "service|the staff made us feel very welcome"],
        "neg": ["food|the food was bland", "food|my steak arrived cold", "food|the fish did not taste fresh",
                "service|the service was painfully slow", "service|our waiter forgot half our order",
                "portions|the portions were tiny for the price", "price|the bill had two extra items on it",
                "setting|it was so loud we could barely talk", "wait|we waited forty minutes for a table",
                "dessert|the dessert tasted like it came from a supermarket", "drinks|the cocktails were watery and overpriced"],
        "vpos": ["We'll definitely be back.", "Highly recommend this place.", "Five stars, no question.",
                 "Best meal we've had in months.", "Book a table, you won't regret it."],
        "vneg": ["Never again.", "We won't be coming back.", "One star.", "Avoid this place.",
                 "Save your money and eat somewhere else."],
    },
    "hotel": {
        "things": ["this hotel", "the guesthouse", "this seaside resort", "the airport hotel",
                   "this boutique hotel", "the hostel"],
        "open": ["We stayed at {t} for three nights.", "I spent a week at {t} for work.",
                 "We booked {t} for a long weekend.", "We stopped at {t} on our way south."],
        "pos": ["room|the room was spotless", "bed|the bed was incredibly comfortable", "breakfast|breakfast was excellent",
                "staff|the staff went out of their way to help", "location|the location is perfect for sightseeing",
                "view|the view from our balcony was stunning", "checkin|check-in took two minutes",
                "pool|the pool was clean and quiet", "wifi|the Wi-Fi was fast everywhere", "noise|the room was wonderfully quiet"],
        "neg": ["room|the room smelled of smoke", "bed|the bed was as hard as a rock", "breakfast|breakfast was a sad buffet of cold eggs",
                "staff|the staff at reception were rude", "location|it is a long way from anything worth seeing",
                "noise|the walls are paper thin", "water|there was no hot water on our second day",
                "wifi|the Wi-Fi barely worked", "room|the bathroom was dirty when we arrived", "checkin|check-in took over an hour"],
        "vpos": ["We'll definitely stay here again.", "Would happily recommend it to anyone.",
                 "Five stars.", "Couldn't have asked for a better stay."],
        "vneg": ["I would not stay here again.", "One star, and only because zero isn't an option.",
                 "Book somewhere else.", "Never again."],
    },
    "shop": {
        "things": ["this online shop", "the store", "this seller", "the furniture shop",
                   "this electronics retailer", "the garden centre"],
        "open": ["I've ordered from {t} a few times now.", "I bought a new desk from {t}.",
                 "I ordered a birthday present from {t}.", "This was my first order from {t}."],
        "pos": ["delivery|the delivery arrived a day early", "packing|everything was packed carefully",
                "product|the product was exactly as described", "support|customer service answered within an hour",
                "returns|returns were quick and easy", "price|the prices are lower than anywhere else",
                "site|the website is easy to use", "quality|the quality is excellent"],
        "neg": ["delivery|the delivery was a week late", "packing|the box arrived crushed",
                "product|the item looked nothing like the photos", "support|customer service never replied to my emails",
                "returns|getting a refund took over a month", "price|they charged me twice",
                "site|the website kept crashing at checkout", "quality|the quality is poor for the price"],
        "vpos": ["I'll order from them again.", "Highly recommended.", "Five stars.", "Great experience overall."],
        "vneg": ["I won't order from them again.", "Avoid.", "One star.", "Terrible experience from start to finish."],
    },
}


def rr_phrases(rng, dom):
    """Three praise and three complaint phrases about six different aspects."""
    by_key = {}
    for pol in ("pos", "neg"):
        for item in dom[pol]:
            key, text = item.split("|", 1)
            by_key.setdefault(key, {}).setdefault(pol, []).append(text)
    keys = sorted(by_key)
    for _ in range(100):
        rng.shuffle(keys)
        pos_keys = [k for k in keys if "pos" in by_key[k]][:3]
        neg_keys = [k for k in keys if "neg" in by_key[k] and k not in pos_keys][:3]
        if len(pos_keys) == 3 and len(neg_keys) == 3:
            break
    return ([pick(rng, by_key[k]["pos"]) for k in pos_keys], [pick(rng, by_key[k]["neg"]) for k in neg_keys])


RR_MIXED_VERDICTS = [
    "Overall it was okay, nothing special.", "Three stars: good in parts, frustrating in others.",
    "I might give it another chance, but I won't rush back.", "Decent, but not great.",
    "It was fine, I guess.", "Some things were great, others really weren't.",
    "Not bad, not great.", "Average overall.", "A mixed experience, to be honest.",
    "I'm still not sure how I feel about it.", "Worth a try, but keep your expectations low.",
    "It has potential, but it isn't there yet.",
]


def make_review_rating(rng, label):
    dom = RR_DOMAINS[pick(rng, sorted(RR_DOMAINS))]
    thing = pick(rng, dom["things"])
    pos, neg = rr_phrases(rng, dom)
    r = rng.random()
    parts = []
    if rng.random() < 0.3:
        parts.append(pick(rng, dom["open"]).replace("{t}", thing))
    if label == "positive":
        if r < 0.4:
            parts.append(cap(pos[0]) + " and " + pos[1] + ".")
        elif r < 0.7:
            parts.append(cap(pos[0]) + ", " + pos[1] + " and " + pos[2] + ".")
            parts.append(pick(rng, ["The only small downside: ", "My only complaint is that "]) + neg[0] + ", but that hardly mattered.")
        else:
            parts.append(cap(pos[0]) + ".")
        parts.append(pick(rng, dom["vpos"]))
    elif label == "negative":
        if r < 0.4:
            parts.append(cap(neg[0]) + " and " + neg[1] + ".")
        elif r < 0.7:
            parts.append(cap(neg[0]) + ", " + neg[1] + ", and " + neg[2] + ".")
            parts.append(pick(rng, ["Sure, ", "Admittedly, ", "To be fair, "]) + pos[0] + ", but that doesn't make up for it.")
        else:
            parts.append(cap(neg[0]) + ".")
        parts.append(pick(rng, dom["vneg"]))
    else:
        form = rng.randrange(4)
        if form == 0:
            parts.append(cap(pos[0]) + ", but " + neg[0] + ".")
        elif form == 1:
            parts.append(cap(neg[0]) + ", but " + pos[0] + ".")
            parts.append(cap(pos[1]) + ", although " + neg[1] + ".")
        elif form == 2:
            parts.append("On the one hand, " + pos[0] + "; on the other, " + neg[0] + ".")
        else:
            parts.append(cap(pos[0]) + " and " + pos[1] + ". Unfortunately, " + neg[0] + " and " + neg[1] + ".")
        if rng.random() < 0.8:
            parts.append(pick(rng, RR_MIXED_VERDICTS))
    return tidy(" ".join(parts))


# --------------------------------------------------------------------------------------
# 5. ner: BIO tagging over PER / LOC / ORG
# --------------------------------------------------------------------------------------

FIRST_NAMES = ["Maria", "James", "Aisha", "Chen", "Olga", "Tomas", "Priya", "Kwame", "Sofia",
               "Liam", "Yuki", "Fatima", "Mateo", "Ingrid", "Omar", "Grace", "Diego", "Hana",
               "Florence", "Jordan", "Victoria", "Georgia", "Samuel", "Elif", "Noah", "Zanele",
               "Pierre", "Anya", "Ravi", "Lucia"]
LAST_NAMES = ["Garcia", "Okafor", "Nakamura", "Petrov", "Schmidt", "Haddad", "Novak", "Mensah",
              "Rossi", "O'Brien", "Kowalski", "Silva", "Lindqvist", "Nguyen", "Washington",
              "Dubois", "Chandra", "Moreno", "Fischer", "Adeyemi", "Kim", "Johansson", "Jordan",
              "Alvarez", "Brennan"]
MULTI_FIRST = ["Mary Anne", "Juan Carlos", "Anna Maria", "Jean Paul"]
LOCATIONS = ["Paris", "Lagos", "Toronto", "Lima", "Osaka", "Berlin", "Nairobi", "Madrid",
             "Dublin", "Chicago", "Manila", "Krakow", "Oslo", "Cairo", "Perth", "Florence",
             "Georgia", "Jordan", "Victoria", "Washington", "New York", "Buenos Aires", "South Africa",
             "Rio de Janeiro", "Hong Kong", "New Zealand", "Cape Town", "Sri Lanka", "Mexico City",
             "the Alps", "the Sahara", "Lake Geneva", "Scotland", "Brazil", "Vietnam", "Kenya",
             "Portugal", "Canada", "Peru", "Norway"]
ORGS = ["Northwind Bank", "Bluepeak Systems", "Greenline Energy", "United Nations", "Red Cross",
        "World Health Organization", "University of Toronto", "Riverside United", "Atlas Airlines",
        "Meridian Health", "Kestrel Labs", "Oakridge Hospital", "Silverline Media", "Orion Motors",
        "Harbor Foods Group", "National Museum of Art", "Lumen Networks", "Crestline Insurance",
        "City Theatre Company", "Save the Oceans Foundation", "Norvik", "Pinewood Academy",
        "Global Press Agency", "Summit Falcons"]

CLUBS = ["Riverside United", "Summit Falcons", "Northgate Rovers", "Ashford City", "Lakeside Lions",
         "Westmoor Town", "Redhill Rockets"]
NER_TEMPLATES = [
    "{PER} was born in {LOC} and moved to {LOC} at the age of twelve .",
    "{ORG} has opened a new office in {LOC} .",
    "According to {PER} , the talks with {ORG} will continue next week .",
    "{PER} , a spokesperson for {ORG} , declined to comment .",
    "The board of {ORG} appointed {PER} as chief executive on Monday .",
    "Flights between {LOC} and {LOC} were cancelled because of the storm .",
    "{PER} and {PER} met in {LOC} to sign the agreement .",
    "Researchers at {ORG} published the study on Tuesday .",
    "{PER} scored twice as {CLUB} beat {CLUB} in {LOC} .",
    "I visited {LOC} last summer with my cousin {PER} .",
    "{PER} works as an accountant at {ORG} in {LOC} .",
    "The festival in {LOC} attracted more than ten thousand visitors .",
    "{ORG} said it would cut two hundred jobs .",
    "Thanks to {PER} , the museum in {LOC} will stay open .",
    "{PER} told reporters that {ORG} had not been informed .",
    "We drove from {LOC} to {LOC} in one day .",
    "{PER} wrote a book about growing up in {LOC} .",
    "Shares in {ORG} fell after {PER} resigned .",
    "The mayor of {LOC} , {PER} , opened the new bridge .",
    "{PER} has joined {ORG} as head of research .",
    "Volunteers from {ORG} arrived in {LOC} on Friday .",
    "My neighbour {PER} used to work for {ORG} .",
    "She spent three years in {LOC} before returning to {LOC} .",
    "{ORG} and {ORG} announced a joint project in {LOC} .",
    "{PER} thanked the staff of {ORG} for their help .",
    "Last year {PER} travelled across {LOC} by train .",
    "Do you know whether {PER} is still living in {LOC} ?",
    "The report by {ORG} praised the schools in {LOC} .",
    "{PER} , who founded {ORG} , will speak at the conference .",
    "Heavy rain caused flooding in parts of {LOC} on Sunday .",
    "{PER} signed a contract with {ORG} worth two million dollars .",
    "A delegation from {ORG} met {PER} in {LOC} .",
    "The new train line will link {LOC} with the airport .",
    "Tickets for the concert by {PER} sold out in minutes .",
    "Dr. {LAST} from {ORG} led the research team .",
    "Ms. {LAST} said the project in {LOC} was nearly finished .",
    "{PER} grew up in {LOC} , not far from the border .",
    "It rained all day , so we stayed at home and watched films .",
    "The meeting was postponed until next week .",
    "Prices went up again this month , and nobody is happy about it .",
    "{ORG} is hiring engineers for its team in {LOC} .",
    "After leaving {ORG} , {PER} started a small bakery in {LOC} .",
]


def person(rng):
    r = rng.random()
    if r < 0.62:
        return [pick(rng, FIRST_NAMES), pick(rng, LAST_NAMES)]
    if r < 0.80:
        return [pick(rng, FIRST_NAMES)]
    if r < 0.90:
        return [pick(rng, LAST_NAMES)]
    return pick(rng, MULTI_FIRST).split() + [pick(rng, LAST_NAMES)]


def ner_example(rng, template):
    tokens, tags = [], []
    used = set()
    for piece in template.split():
        m = re.fullmatch(r"\{(\w+)\}", piece)
        if not m:
            tokens.append(piece)
            tags.append("O")
            continue
        kind = m.group(1)
        for _ in range(20):
            if kind == "PER":
                ent, typ = person(rng), "PER"
            elif kind == "LAST":
                ent, typ = [pick(rng, LAST_NAMES)], "PER"
            elif kind == "LOC":
                ent, typ = pick(rng, LOCATIONS).split(), "LOC"
            elif kind == "CLUB":
                ent, typ = pick(rng, CLUBS).split(), "ORG"
            else:
                ent, typ = pick(rng, ORGS).split(), "ORG"
            if " ".join(ent) not in used:
                break
        used.add(" ".join(ent))
        if ent[0] == "the":  # "the Alps": the article is outside the entity
            tokens.append("the" if tokens else "The")
            tags.append("O")
            ent = ent[1:]
        for i, w in enumerate(ent):
            tokens.append(w)
            tags.append(("B-" if i == 0 else "I-") + typ)
    tokens[0] = cap(tokens[0])
    return tokens, tags


def entity_counts(tags):
    return Counter(t[2:] for t in tags if t.startswith("B-"))


def make_ner(rng, sizes, seen):
    out = {}
    for split in SPLITS:
        rows = []
        totals = Counter({"PER": 0, "LOC": 0, "ORG": 0})
        while len(rows) < sizes[split]:
            cands = []
            for _ in range(4):
                toks, tags = ner_example(rng, pick(rng, NER_TEMPLATES))
                key = " ".join(toks).lower()
                if key in seen:
                    continue
                c = totals + entity_counts(tags)
                spread = max(c[k] for k in ("PER", "LOC", "ORG")) - min(c[k] for k in ("PER", "LOC", "ORG"))
                cands.append((spread, rng.random(), toks, tags, key))
            if not cands:
                continue
            cands.sort(key=lambda c: (c[0], c[1]))
            _, _, toks, tags, key = cands[0]
            seen.add(key)
            totals += entity_counts(tags)
            rows.append((toks, tags))
        out[split] = rows
    return out


# --------------------------------------------------------------------------------------
# 6. similarity: sentence pairs with a score in [0, 5]
# --------------------------------------------------------------------------------------

# A frame is a template over slots. Each slot: (kind, values), where kind is
# "syn" (one meaning, several wordings), "core" (a change alters the main meaning),
# "minor" (a change alters a detail) or "opt" (a detail that may be left out).
# Every value is a list of equivalent wordings.
SIM_FRAMES = [
    ("people", "{subj} {cut} {veg}{where}.", {
        "subj": ("core", [["A man", "A guy"], ["A woman", "A lady"], ["A chef", "A cook"], ["A boy", "A young boy"]]),
        "cut": ("syn", [["is slicing", "is cutting", "is chopping"]]),
        "veg": ("core", [["an onion"], ["a tomato"], ["a potato"], ["a cucumber"], ["some carrots"]]),
        "where": ("opt", [[" in the kitchen", " in a kitchen"], [" on a wooden board", " on a cutting board"]]),
    }),
    ("people", "{subj} {play} {instr}{where}.", {
        "subj": ("core", [["A man", "A guy"], ["A woman", "A lady"], ["A little girl", "A young girl"], ["An old man", "An elderly man"]]),
        "play": ("syn", [["is playing"]]),
        "instr": ("core", [["a guitar"], ["the piano"], ["a violin"], ["the drums"], ["a flute"]]),
        "where": ("opt", [[" on the street", " outside on the street"], [" on stage", " on a stage"], [" in the park", " at the park"]]),
    }),
    ("people", "{subj} {ride} {veh}{where}.", {
        "subj": ("core", [["A man", "A guy"], ["A woman", "A lady"], ["A teenager", "A teenage boy"], ["A child", "A kid"]]),
        "ride": ("syn", [["is riding"]]),
        "veh": ("core", [["a bike", "a bicycle"], ["a horse"], ["a motorbike", "a motorcycle"], ["a skateboard"]]),
        "where": ("opt", [[" down a hill", " down a steep hill"], [" along the beach", " on the beach"], [" through the city", " through town"]]),
    }),
    ("people", "{subj} {read} {thing}{where}.", {
        "subj": ("core", [["A man", "A guy"], ["A woman", "A lady"], ["A student", "A young student"], ["An old woman", "An elderly woman"]]),
        "read": ("syn", [["is reading"]]),
        "thing": ("core", [["a newspaper", "the paper"], ["a map"], ["a thick book", "a big book"], ["a letter"]]),
        "where": ("opt", [[" on a bench", " on a park bench"], [" on the train", " on a train"], [" in bed"]]),
    }),
    ("animals", "{animal} {run} {where}{how}.", {
        "animal": ("core", [["A dog", "A pet dog"], ["A cat"], ["A horse"], ["A small child", "A little kid"]]),
        "run": ("syn", [["is running", "runs"], ["is jumping", "jumps"]]),
        "where": ("core", [["across a field", "through a field"], ["along the beach", "on the beach"], ["in the snow", "through the snow"]]),
        "how": ("opt", [[" with a ball in its mouth", " carrying a ball"], [" at full speed", " very fast"]]),
    }),
    ("news", "{company} {reported} {dir} {metric}{period}.", {
        "company": ("core", [["Altura Bank"], ["Orion Motors"], ["Grayson Retail"], ["Kestrel Labs"]]),
        "reported": ("syn", [["reported", "announced", "posted"]]),
        "dir": ("core", [["higher", "increased"], ["lower", "reduced"]]),
        "metric": ("minor", [["profits", "earnings"], ["sales", "revenue"]]),
        "period": ("opt", [[" this quarter", " for the quarter"], [" last year", " for the past year"]]),
    }),
    ("news", "{weather} {verb} {city}{when}.", {
        "weather": ("core", [["Heavy rain", "Torrential rain"], ["Strong winds", "Powerful winds"], ["Thick fog", "Dense fog"], ["Heavy snow", "Deep snow"]]),
        "verb": ("syn", [["is expected in", "is forecast for", "will hit"]]),
        "city": ("core", [["Dublin"], ["Madrid"], ["Oslo"], ["Toronto"]]),
        "when": ("opt", [[" tomorrow", " tomorrow morning"], [" over the weekend", " this weekend"]]),
    }),
    ("news", "{team} {beat} {team2}{score}.", {
        "team": ("core", [["Riverside United", "Riverside"], ["Northgate Rovers", "Northgate"]]),
        "beat": ("syn", [["beat", "defeated", "won against"]]),
        "team2": ("core", [["Ashford City", "Ashford"], ["Westmoor Town", "Westmoor"], ["Kingsbridge"]]),
        "score": ("opt", [[" 2-1", " by two goals to one"], [" 3-0", " by three goals to nil"]]),
    }),
    ("news", "{thing} {delayed} {dur}{why}.", {
        "thing": ("core", [["The train to Leeds", "The Leeds train"], ["The flight to Rome", "The Rome flight"], ["The bus to the airport", "The airport bus"]]),
        "delayed": ("syn", [["was delayed by", "was running late by", "arrived late by"]]),
        "dur": ("minor", [["an hour", "one hour"], ["twenty minutes", "20 minutes"], ["three hours", "3 hours"]]),
        "why": ("opt", [[" because of a strike", " due to a strike"], [" because of bad weather", " due to bad weather"]]),
    }),
    ("news", "The {meeting} {moved} {day}{time}.", {
        "meeting": ("core", [["meeting", "team meeting"], ["dentist appointment", "appointment with the dentist"], ["concert", "show"]]),
        "moved": ("syn", [["has been moved to", "was rescheduled for", "will now take place on"]]),
        "day": ("core", [["Monday"], ["Thursday"], ["Saturday"]]),
        "time": ("opt", [[" at three", " at 3 p.m."], [" in the morning", " morning"]]),
    }),
]
SIM_BIN_RANGES = {0: (0.0, 0.9), 1: (1.0, 1.9), 2: (2.0, 2.9), 3: (3.0, 3.9), 4: (4.0, 5.0)}


def sim_render(rng, frame, choice, drop=()):
    _, template, slots = frame

    def rep(m):
        name = m.group(1)
        kind, values = slots[name]
        idx = choice[name]
        if idx is None or name in drop:
            return ""
        return pick(rng, values[idx])
    s = re.sub(r"\{(\w+)\}", rep, template)
    return tidy(s).replace("runs through", "runs through")


def sim_fix(s):
    # "posted higher profits" fine; make the "runs/jumps" variants and article use tidy
    return s


def sim_pair(rng, target_bin):
    usable = [f for f in SIM_FRAMES
              if target_bin != 1 or sum(k == "core" for k, _ in f[2].values()) >= 2]
    frame = pick(rng, usable)
    _, _, slots = frame
    base = {name: rng.randrange(len(vals)) for name, (kind, vals) in slots.items()}
    for name, (kind, vals) in slots.items():
        if kind == "opt" and rng.random() < 0.35:
            base[name] = None
    other = dict(base)
    drop = ()
    lo, hi = SIM_BIN_RANGES[target_bin]
    core = [n for n, (k, v) in slots.items() if k == "core"]
    minor = [n for n, (k, v) in slots.items() if k in ("minor",)]
    opt = [n for n, (k, v) in slots.items() if k == "opt"]

    def change(name):
        vals = slots[name][1]
        other[name] = (base[name] + 1 + rng.randrange(len(vals) - 1)) % len(vals) if base[name] is not None \
            else rng.randrange(len(vals))

    if target_bin == 4:  # paraphrase, possibly without an optional detail
        if rng.random() < 0.35:
            present = [n for n in opt if base[n] is not None]
            if present:
                drop = (pick(rng, present),)
                lo, hi = 4.0, 4.4
        else:
            lo, hi = 4.4, 5.0
    elif target_bin == 3:  # a detail differs
        cands = minor + opt
        name = pick(rng, cands)
        if slots[name][0] == "opt" and base[name] is None:
            base[name] = rng.randrange(len(slots[name][1]))
            other[name] = base[name]
            drop = (name,)
            lo, hi = 3.6, 3.9
        else:
            change(name)
    elif target_bin == 2:  # one core element differs
        change(pick(rng, core))
    elif target_bin == 1:  # two core elements differ
        for name in rng.sample(core, 2):
            change(name)
    else:  # a different frame altogether
        frame2 = pick(rng, [f for f in SIM_FRAMES if f is not frame])
        c2 = {name: rng.randrange(len(vals)) for name, (kind, vals) in frame2[2].items()}
        s1 = sim_render(rng, frame, base)
        s2 = sim_render(rng, frame2, c2)
        same_domain = frame2[0] == frame[0]
        score = rng.uniform(0.4, 0.9) if same_domain else rng.uniform(0.0, 0.5)
        return s1, s2, score
    for _ in range(10):
        s1 = sim_render(rng, frame, base)
        s2 = sim_render(rng, frame, other, drop)
        if s1 != s2:
            break
    score = rng.uniform(lo, hi)
    return s1, s2, score


def make_similarity(rng, sizes, seen):
    out = {}
    for split in SPLITS:
        rows = []
        for b in balanced_labels(rng, [0, 1, 2, 3, 4], sizes[split]):
            for _ in range(2000):
                s1, s2, score = sim_pair(rng, b)
                if s1 == s2:
                    continue
                if rng.random() < 0.5:
                    s1, s2 = s2, s1
                key = tuple(sorted((s1.lower(), s2.lower())))
                if key in seen:
                    continue
                seen.add(key)
                score = min(5.0, max(0.0, round(score, 1)))
                rows.append((s1, s2, "%.1f" % score))
                break
            else:
                raise RuntimeError("similarity: no new pair")
        out[split] = rows
    return out


# --------------------------------------------------------------------------------------
# 7. emotions: multi-label, 0 to 3 of five emotions
# --------------------------------------------------------------------------------------

EMOTIONS = ["joy", "anger", "sadness", "surprise", "fear"]
EMO_EVENTS = {
    "joy": ["I finally got the job I had been hoping for", "my sister called to say she is getting married",
            "we spent the whole afternoon laughing at the beach", "my best friend came home after two years abroad",
            "I passed my driving test on the first try", "^the garden is finally blooming after weeks of work",
            "our team won the final in the last minute", "my daughter took her first steps today"],
    "anger": ["my landlord kept our deposit for no reason", "someone scratched my car in the car park and just drove off",
              "the airline cancelled my flight and refused to help", "my coworker took credit for my work again",
              "the neighbours played loud music until three in the morning", "the company charged me twice and then blamed me",
              "the referee ignored a blatant foul right in front of him", "someone cut in front of me after I'd queued for an hour"],
    "sadness": ["my old dog passed away this morning", "^my best friend is moving to another country",
                "I didn't get to say goodbye to my grandmother", "the bookshop my dad ran for thirty years closed for good",
                "we had to cancel the trip we had planned all year", "nobody came to my birthday dinner",
                "I found out my childhood home was torn down", "^my brother and I haven't spoken in months"],
    "surprise": ["a stranger returned my lost wallet with all the cash still inside", "my parents showed up at my door unannounced",
                 "the quiet new guy at work turned out to be a chess champion", "the package arrived three weeks early",
                 "I found a letter from 1952 hidden behind the wallpaper", "my shy cousin got up and sang in front of everyone",
                 "the exam results came out a month ahead of schedule", "it snowed in the middle of May"],
    "fear": ["I heard footsteps downstairs in the middle of the night", "the plane dropped suddenly during the storm",
             "^the doctor wants to run more tests", "my little brother went missing at the fair for an hour",
             "the brakes failed on the way down the hill", "a huge dog ran at me on my way home",
             "the lights went out while I was alone in the house", "the river rose so fast that water came under our door"],
}
EMO_REACTIONS = {
    "joy": ["I couldn't stop smiling", "I'm so happy right now", "it made my whole week", "I felt pure joy",
            "I'm absolutely delighted", "I was grinning from ear to ear", "my heart is so full", "I'm over the moon"],
    "anger": ["I am absolutely furious", "it makes my blood boil", "I'm so angry I could scream",
              "I've had enough of this nonsense", "I slammed the door and walked out", "I'm livid",
              "I could barely keep my temper", "I'm fuming"],
    "sadness": ["I feel so empty", "I cried for hours", "my heart is heavy", "everything feels grey today",
                "I miss how things used to be", "I just want to curl up and be alone", "it broke my heart",
                "I can't stop crying"],
    "surprise": ["I couldn't believe my eyes", "I never saw that coming", "I'm still in shock", "talk about unexpected",
                 "I had to read it twice", "that completely caught me off guard", "I was speechless",
                 "I honestly did not expect that"],
    "fear": ["I was terrified", "my hands are still shaking", "I've never been so scared", "I could hardly breathe",
             "I'm worried sick", "a chill ran down my spine", "I was frozen with fear", "I'm scared of what comes next"],
}
EMO_REACTIONS_PAST = {
    "joy": ["I couldn't stop smiling", "I felt pure joy", "I was grinning from ear to ear", "I was over the moon",
            "I jumped up and down like a kid"],
    "anger": ["I was absolutely furious", "my blood boiled", "I could barely keep my temper",
              "I slammed the door and walked out", "I was so angry I could have screamed"],
    "sadness": ["I cried for hours", "it broke my heart", "I felt completely empty", "my heart sank",
                "I couldn't stop crying"],
    "surprise": ["I couldn't believe my eyes", "I never saw it coming", "I was speechless",
                 "I was completely caught off guard", "my jaw dropped"],
    "fear": ["I was terrified", "I could hardly breathe", "a chill ran down my spine", "I was frozen with fear",
             "my heart was pounding"],
}
EMO_ADJ = {"joy": ["happy", "thrilled", "delighted"], "anger": ["angry", "furious", "annoyed"],
           "sadness": ["sad", "heartbroken", "miserable"], "surprise": ["surprised", "shocked", "amazed"],
           "fear": ["scared", "afraid", "frightened"]}
EMO_NEUTRAL = [
    "I spent the morning sorting through my emails", "the bus was on time, as usual",
    "we're having pasta for dinner tonight", "I picked up the groceries on the way home",
    "the meeting has been moved to Thursday at ten", "I watered the plants and read for a bit",
    "my train gets in at half past six", "I need to remember to renew my library card",
    "we painted the spare room a pale green", "the shop closes early on Sundays",
    "I walked to work because it was a nice day", "the printer on the second floor is working again",
    "I made a list of things to pack for the trip", "my phone needs a new screen protector",
    "we moved the sofa closer to the window", "the report is due at the end of the month",
]
EMO_NEG_TRAPS = {  # mention an emotion word but deny it
    "joy": ["I wasn't exactly thrilled, but it was fine", "I'm not over the moon about it, just okay"],
    "anger": ["I'm not angry about the delay", "honestly, I wasn't even annoyed"],
    "sadness": ["I'm not sad that the course is over", "I didn't cry or anything"],
    "surprise": ["none of this surprised me", "I wasn't surprised in the slightest"],
    "fear": ["I wasn't scared at all", "I'm not afraid of the dark anymore"],
}


def emotion_text(rng, labels):
    parts = []
    if not labels:
        n = rng.choice([1, 1, 2, 2, 3])
        clauses = rng.sample(EMO_NEUTRAL, n)
        if rng.random() < 0.35:
            clauses.insert(rng.randrange(len(clauses) + 1), pick(rng, EMO_NEG_TRAPS[pick(rng, EMOTIONS)]))
        text = ". ".join(clauses) if rng.random() < 0.5 else ", and ".join(clauses) if len(clauses) == 2 else ". ".join(clauses)
        return tidy(ensure_end(text))
    order = list(labels)
    rng.shuffle(order)
    first = order[0]
    ev = pick(rng, EMO_EVENTS[first])
    present = ev.startswith("^")
    ev = ev.lstrip("^")
    form = rng.randrange(5)
    if form == 0 and present:
        form = 1
    if form == 0:
        parts.append("When " + ev + ", " + pick(rng, EMO_REACTIONS_PAST[first]) + ".")
    elif form == 1:
        parts.append(cap(ev) + ", and " + pick(rng, EMO_REACTIONS[first]) + ".")
    elif form == 2:
        parts.append(cap(ev) + ". " + cap(pick(rng, EMO_REACTIONS[first])) + ".")
    elif form == 3:
        parts.append("I'm so " + pick(rng, EMO_ADJ[first]) + " because " + ev + ".")
    else:
        parts.append(cap(ev) + pick(rng, [". ", "! "]))
    for emo in order[1:]:
        r = rng.random()
        if r < 0.2:
            parts.append(cap(pick(rng, ["and ", "at the same time, ", "honestly, ", "", "on top of that, "])) +
                         pick(rng, EMO_REACTIONS[emo]) + ".")
        elif r < 0.9:
            ev2 = pick(rng, EMO_EVENTS[emo])
            conn = ["also, ", "and to top it off, ", "on top of that, "] if ev2.startswith("^") else \
                ["also, ", "then ", "later, ", "and to top it off, ", "on top of that, "]
            parts.append(cap(pick(rng, conn)) + ev2.lstrip("^") + ", and " + pick(rng, EMO_REACTIONS[emo]) + ".")
        else:
            parts.append("I'm " + pick(rng, ["also ", "a bit ", "really ", "", "kind of "]) + pick(rng, EMO_ADJ[emo]) + ".")
    # the reaction-free form for the first label needs its emotion voiced somewhere
    if form == 4:
        parts.insert(1, cap(pick(rng, EMO_REACTIONS[first])) + ".")
    if rng.random() < 0.2:
        absent = [e for e in EMOTIONS if e not in labels]
        if absent:
            parts.insert(rng.randrange(len(parts) + 1), cap(pick(rng, EMO_NEG_TRAPS[pick(rng, absent)])) + ".")
    return tidy(" ".join(parts))


def make_emotions(rng, sizes, seen):
    card_weights = [(0, 0.12), (1, 0.40), (2, 0.33), (3, 0.15)]
    out = {}
    for split in SPLITS:
        rows = []
        counts = Counter({e: 0 for e in EMOTIONS})
        n = sizes[split]
        cards = []
        for c, w in card_weights:
            cards += [c] * round(w * n)
        while len(cards) < n:
            cards.append(1)
        cards = cards[:n]
        rng.shuffle(cards)
        for c in cards:
            combos = list(itertools.combinations(EMOTIONS, c))
            best = min(sum(counts[e] for e in combo) for combo in combos)
            combos = [combo for combo in combos if sum(counts[e] for e in combo) == best]
            combo = list(pick(rng, combos))
            for _ in range(2000):
                text = emotion_text(rng, combo)
                if text.lower() not in seen and 4 <= n_words(text) <= 64:
                    break
            else:
                raise RuntimeError("emotions: no new text")
            seen.add(text.lower())
            counts.update(combo)
            rows.append((text, [e for e in EMOTIONS if e in combo]))
        out[split] = rows
    return out


# --------------------------------------------------------------------------------------
# writing, checking, README
# --------------------------------------------------------------------------------------

def write_text(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(text)


def csv_text(header, rows):
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for r in rows:
        w.writerow(r)
    return buf.getvalue()


def jsonl_text(objs):
    return "".join(json.dumps(o, ensure_ascii=False) + "\n" for o in objs)


def tsv_text(header, rows):
    lines = ["\t".join(header)]
    for r in rows:
        for field in r:
            assert "\t" not in str(field) and "\n" not in str(field), field
        lines.append("\t".join(str(x) for x in r))
    return "\n".join(lines) + "\n"


def fmt_counts(counter, order):
    return ", ".join("%s %d" % (k, counter.get(k, 0)) for k in order)


def check_balance(name, counter, order):
    vals = [counter.get(k, 0) for k in order]
    mean = sum(vals) / len(vals)
    for k, v in zip(order, vals):
        if abs(v - mean) > 0.15 * mean:
            raise RuntimeError("%s: label %s has %d, mean %.1f (outside +-15%%)" % (name, k, v, mean))


def word_stats(texts):
    lens = [n_words(t) for t in texts]
    return min(lens), sum(lens) / len(lens), max(lens)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(os.path.dirname(here), "assets", "datasets"))
    args = ap.parse_args()
    out = args.out
    readme = {}
    summary = []

    def report(task, split, path, counter, order, texts):
        check_balance("%s/%s" % (task, split), counter, order)
        mn, avg, mx = word_stats(texts)
        summary.append("%-14s %-10s %4d rows  %7d bytes  words %d-%d (mean %.1f)  %s" % (
            task, split, len(texts), os.path.getsize(path), mn, mx, avg, fmt_counts(counter, order)))
        return mn, avg, mx

    # 1. sentiment
    rng = random.Random(SEED + 1)
    sizes = {"train": 600, "validation": 100, "test": 100}
    data = generate_classification(rng, ["negative", "positive"], sizes, make_sentiment, set())
    stats = {}
    for split in SPLITS:
        p = os.path.join(out, "sentiment", split + ".csv")
        write_text(p, csv_text(["text", "label"], data[split]))
        c = Counter(l for _, l in data[split])
        stats[split] = (len(data[split]), c, report("sentiment", split, p, c, ["negative", "positive"], [t for t, _ in data[split]]))
    readme["sentiment"] = ("Binary sentiment of product and movie reviews. CSV with header `text,label` "
                           "(standard CSV quoting: texts containing commas or quotes are quoted), labels "
                           "`negative` and `positive`. Reviews mix aspect judgements, negation (\"not bad at all\"), "
                           "contrast (\"..., but ...\") and implicit verdicts; the overall verdict decides the label.", stats,
                           ["negative", "positive"], "csv")

    # 2. topic
    rng = random.Random(SEED + 2)
    topics = ["sports", "technology", "food", "travel", "finance"]
    data = generate_classification(rng, topics, sizes, make_topic, set())
    stats = {}
    for split in SPLITS:
        p = os.path.join(out, "topic", split + ".jsonl")
        write_text(p, jsonl_text({"text": t, "label": l} for t, l in data[split]))
        c = Counter(l for _, l in data[split])
        stats[split] = (len(data[split]), c, report("topic", split, p, c, topics, [t for t, _ in data[split]]))
    readme["topic"] = ("Five-way topic classification of short news-like sentences. JSON Lines, one object per line "
                       "with fields `text` and `label`; labels `sports`, `technology`, `food`, `travel`, `finance`. "
                       "Some sentences sit near a border (an airline's quarterly loss is `finance`, a booking app is "
                       "`technology`, a street-food tour is `travel`). A quarter of the sentence templates never occur in "
                       "`train`; about half of the validation and test sentences use them.", stats, topics, "jsonl")

    # 3. nli
    rng = random.Random(SEED + 3)
    nli_labels = ["entailment", "neutral", "contradiction"]
    data = make_nli(rng, sizes, set())
    stats = {}
    for split in SPLITS:
        p = os.path.join(out, "nli", split + ".tsv")
        rows = [(i, s1, s2, l) for i, (s1, s2, l) in enumerate(data[split])]
        write_text(p, tsv_text(["index", "sentence1", "sentence2", "label"], rows))
        c = Counter(l for _, _, l in data[split])
        stats[split] = (len(rows), c, report("nli", split, p, c, nli_labels, [a + " " + b for a, b, _ in data[split]]))
    readme["nli"] = ("Natural language inference over sentence pairs (a scene description and a claim about it). "
                     "GLUE-style TSV with header `index\tsentence1\tsentence2\tlabel`, tab-separated, no quoting "
                     "(texts never contain tabs); labels `entailment`, `neutral`, `contradiction`. Negated and "
                     "high-overlap hypotheses appear under every label.", stats, nli_labels, "tsv")

    # 4. review_rating
    rng = random.Random(SEED + 4)
    rr_labels = ["negative", "mixed", "positive"]
    rr_sizes = {"train": 100, "validation": 100, "test": 100}
    data = generate_classification(rng, rr_labels, rr_sizes, make_review_rating, set())
    stats = {}
    for split in SPLITS:
        p = os.path.join(out, "review_rating", split + ".csv")
        write_text(p, csv_text(["text", "label"], data[split]))
        c = Counter(l for _, l in data[split])
        stats[split] = (len(data[split]), c, report("review_rating", split, p, c, rr_labels, [t for t, _ in data[split]]))
    readme["review_rating"] = ("The target task for AdapterFusion: three-way rating of restaurant, hotel and shop "
                               "reviews, kept small on purpose (the sentiment and topic adapters carry knowledge "
                               "that helps). CSV with header `text,label`, labels `negative`, `mixed`, `positive`. "
                               "`mixed` reviews weigh praise against complaints; positive and negative reviews may "
                               "concede one point to the other side.", stats, rr_labels, "csv")

    # 5. ner
    rng = random.Random(SEED + 5)
    ner_sizes = {"train": 400, "validation": 80, "test": 80}
    data = make_ner(rng, ner_sizes, set())
    stats = {}
    ner_types = ["PER", "LOC", "ORG"]
    ner_tags = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]
    ner_tag_counts = {}
    for split in SPLITS:
        p = os.path.join(out, "ner", split + ".jsonl")
        write_text(p, jsonl_text({"tokens": t, "tags": g} for t, g in data[split]))
        c = Counter()
        tc = Counter()
        for _, g in data[split]:
            c += entity_counts(g)
            tc.update(g)
        ner_tag_counts[split] = tc
        stats[split] = (len(data[split]), c, report("ner", split, p, c, ner_types, [" ".join(t) for t, _ in data[split]]))
    readme["ner"] = ("Named-entity tagging. JSON Lines with fields `tokens` (words, punctuation split off) and `tags` "
                     "(one BIO tag per token from `O, B-PER, I-PER, B-LOC, I-LOC, B-ORG, I-ORG`). Some words are "
                     "entities of different types in different sentences (Florence, Jordan, Washington, Victoria as "
                     "a person or a place); titles such as `Dr.` and an article before a place are `O`. The counts "
                     "below are entity mentions (B- tags), balanced across the three types.", stats, ner_types, "jsonl")

    # 6. similarity
    rng = random.Random(SEED + 6)
    data = make_similarity(rng, ner_sizes, set())
    stats = {}
    bins = ["[0,1)", "[1,2)", "[2,3)", "[3,4)", "[4,5]"]
    for split in SPLITS:
        p = os.path.join(out, "similarity", split + ".csv")
        write_text(p, csv_text(["sentence1", "sentence2", "score"], data[split]))
        c = Counter(bins[min(4, int(float(s)))] for _, _, s in data[split])
        stats[split] = (len(data[split]), c, report("similarity", split, p, c, bins, [a + " " + b for a, b, _ in data[split]]))
    readme["similarity"] = ("Semantic textual similarity as regression. CSV with header `sentence1,sentence2,score`; "
                            "`score` is a float in [0, 5] with one decimal (5 = same meaning, 4 = same meaning with a "
                            "detail missing, 3 = a detail differs, 2 = one main element differs, 1 = two main elements "
                            "differ, 0 = unrelated). Counts below are per score band.", stats, bins, "csv")

    # 7. emotions
    rng = random.Random(SEED + 7)
    data = make_emotions(rng, ner_sizes, set())
    stats = {}
    for split in SPLITS:
        p = os.path.join(out, "emotions", split + ".jsonl")
        write_text(p, jsonl_text({"text": t, "labels": ls} for t, ls in data[split]))
        c = Counter()
        for _, ls in data[split]:
            c.update(ls)
        card = Counter(len(ls) for _, ls in data[split])
        stats[split] = (len(data[split]), c, report("emotions", split, p, c, EMOTIONS, [t for t, _ in data[split]]), card)
    readme["emotions"] = ("Multi-label emotion detection. JSON Lines with fields `text` and `labels` (a list of 0 to 3 "
                          "of `joy, anger, sadness, surprise, fear`, in that order; an empty list means no emotion). "
                          "Some texts name an emotion only to deny it (\"I wasn't scared at all\"), which does not "
                          "count. Counts below are label occurrences.", stats, EMOTIONS, "jsonl")

    # README
    ext = {"csv": "csv", "jsonl": "jsonl", "tsv": "tsv"}
    lines = [
        "# Demo datasets",
        "",
        "Small English datasets for trying Adapter Studio on the demo model (all-MiniLM-L6-v2, uncased). "
        "All data here is **synthetic**: it was written for this project by `scripts/make_demo_datasets.py` "
        "from templates, word lists and seeded random variation, with no downloaded or copied text. "
        "Names of people, companies and teams are invented or generic. Re-run "
        "`python3 scripts/make_demo_datasets.py` to regenerate; the script is deterministic and writes "
        "byte-identical files (this README included). Every task has `train`, `validation` and `test` files, "
        "UTF-8, with a header row for CSV/TSV; no text appears in two splits.",
        "",
    ]
    titles = {"sentiment": "sentiment", "topic": "topic", "nli": "nli", "review_rating": "review_rating",
              "ner": "ner", "similarity": "similarity", "emotions": "emotions"}
    for task in ["sentiment", "topic", "nli", "review_rating", "ner", "similarity", "emotions"]:
        desc, st, order, e = readme[task]
        files = ", ".join("`%s/%s.%s`" % (task, s, ext[e]) for s in SPLITS)
        sizes_txt = " / ".join("%d" % st[s][0] for s in SPLITS)
        dist = "; ".join("%s: %s" % (s, fmt_counts(st[s][1], order)) for s in SPLITS)
        mn = min(st[s][2][0] for s in SPLITS)
        mx = max(st[s][2][2] for s in SPLITS)
        para = "**%s** — %s Files %s; %s rows (train / validation / test); distribution — %s. Lengths %d to %d words%s." % (
            titles[task], desc, files, sizes_txt, dist, mn, mx, " per pair" if task in ("nli", "similarity") else "")
        if task == "emotions":
            cards = "; ".join("%s: %s" % (s, ", ".join("%d labels %d" % (k, st[s][3].get(k, 0)) for k in range(4))) for s in SPLITS)
            para += " Labels per text — %s." % cards
        if task == "ner":
            tagdist = "; ".join("%s: %s" % (s, fmt_counts(ner_tag_counts[s], ner_tags)) for s in SPLITS)
            para += " Tag counts — %s." % tagdist
        lines += [para, ""]
    write_text(os.path.join(out, "README.md"), "\n".join(lines))

    total = 0
    for root, _, files in os.walk(out):
        for f in files:
            total += os.path.getsize(os.path.join(root, f))
    print("\n".join(summary))
    print("total size of %s: %d bytes" % (out, total))
    if total > 1_500_000:
        raise RuntimeError("datasets exceed 1.5 MB")


if __name__ == "__main__":
    sys.exit(main())
