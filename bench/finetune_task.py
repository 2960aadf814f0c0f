"""The fine-tuning benchmark's tasks: JSON extraction (train and held out) and general questions.

A JSON extraction example: the user gives a sentence about a person, built from a template with
a name, a city and a job, and asks for the person as JSON; the assistant answers exactly
``{"name": ..., "city": ..., "job": ...}``. The held-out set uses names and cities the training
set never shows (jobs, instructions and sentence templates are shared); a harder held-out set
also uses templates it never shows; the training set has so many names
and cities (about 110 and 130) that a fine-tune learns to copy them rather than to remember
them. Everything is deterministic from a seed.
"""

from __future__ import annotations

import json
import random
import re
from typing import Any

TEMPLATES = [
    "{name} lives in {city} and works as {a_job}.",
    "Meet {name}, {a_job} from {city}.",
    "{name} is {a_job} based in {city}.",
    "After years of training, {name} now works as {a_job} in {city}.",
    "In {city}, {name} has a job as {a_job}.",
    "{name}, who lives in {city}, is {a_job}.",
    "Our new neighbour {name} moved to {city} to work as {a_job}.",
    "The {job} {name} comes from {city}.",
    "{name} works in {city} as {a_job}.",
    "Born and raised in {city}, {name} became {a_job}.",
    "Everyone in {city} knows {name}, the local {job}.",
    "{name} is known across {city} as a talented {job}.",
    "Say hello to {name}, {a_job} who calls {city} home.",
    "{name} spends every day working as {a_job} in {city}.",
    "From {city}, {name} writes to us about life as {a_job}.",
    # held out from here on
    "Yesterday I met {name}, {a_job} living in {city}.",
    "{city} is home to {name}, who works as {a_job}.",
    "Working as {a_job}, {name} has lived in {city} for ten years.",
    "If you visit {city}, ask for {name}, the best {job} in town.",
    "Last spring {name} opened a small office in {city} and started out as {a_job}.",
]
HELD_OUT_TEMPLATES = 5
NAMES = [
    "Alice", "Bruno", "Chloe", "Daniel", "Elena", "Felix", "Grace", "Hugo", "Ingrid", "Jonas",
    "Karin", "Liam", "Maya", "Nikolai", "Olivia", "Pedro", "Quentin", "Rosa", "Samuel", "Tara",
    "Ulrich", "Vera", "William", "Ximena", "Yusuf", "Zoe", "Amir", "Beatrix", "Carlos", "Dalia",
    "Emil", "Fatima", "Gustav", "Hana", "Ivan", "Julia", "Kofi", "Lena", "Marco", "Nora",
    "Aisha", "Bjorn", "Camille", "Dmitri", "Eleanor", "Farid", "Giulia", "Hiroshi", "Imogen",
    "Jamal", "Kasia", "Leopold", "Mei", "Nadia", "Orla", "Pavel", "Rania", "Stellan", "Thandiwe",
    "Umberto", "Valentina", "Wojciech", "Xavier", "Yasmin", "Zoltan", "Adaeze", "Benedikt",
    "Chiara", "Darius", "Efua", "Fernando", "Gwen", "Hector", "Ilse", "Joaquin", "Kenji",
    "Ludmila", "Mateo", "Nkechi", "Ottilie", "Piotr", "Rashid", "Sigrid", "Tobias", "Uma",
    "Vikram", "Wilhelmina", "Yosef", "Zara", "Anselm", "Bongani", "Cordelia", "Dagny", "Eamon",
    "Freya", "Gideon", "Halima", "Isidore", "Jovana", "Klaus", "Lucinda", "Mustafa", "Niamh",
    "Octavia", "Percival", "Rosalind", "Seamus", "Tatiana", "Ugo", "Vesna", "Winston", "Yelena",
    # held out from here on
    "Oskar", "Priya", "Rafael", "Sofia", "Tomas", "Ursula", "Viktor", "Wanda", "Yara", "Zeno",
    "Anouk", "Bartholomew", "Cosima", "Desmond", "Esperanza", "Florian", "Greta", "Hamish",
    "Ines", "Jasper",
]  # fmt: skip
HELD_OUT_NAMES = 20
CITIES = [
    "Paris", "Berlin", "Madrid", "Rome", "Vienna", "Prague", "Lisbon", "Dublin", "Oslo",
    "Helsinki", "Warsaw", "Athens", "Toronto", "Chicago", "Boston", "Seattle", "Denver", "Sydney",
    "Melbourne", "Tokyo", "Osaka", "Seoul", "Mumbai", "Cairo", "Nairobi", "Lima", "Santiago",
    "Montreal", "Porto", "Seville", "Bologna", "Turin", "Lyon", "Nantes", "Bordeaux", "Hamburg",
    "Leipzig", "Dresden", "Gdansk", "Wroclaw", "Brno", "Graz", "Salzburg", "Ghent", "Bruges",
    "Utrecht", "Aarhus", "Bergen", "Tampere", "Uppsala", "Gothenburg", "Riga", "Tallinn",
    "Vilnius", "Ljubljana", "Zagreb", "Split", "Sofia", "Plovdiv", "Bucharest", "Cluj",
    "Thessaloniki", "Izmir", "Ankara", "Tbilisi", "Yerevan", "Baku", "Almaty", "Tashkent",
    "Karachi", "Lahore", "Dhaka", "Kathmandu", "Colombo", "Chennai", "Pune", "Jaipur", "Hanoi",
    "Manila", "Jakarta", "Bandung", "Kyoto", "Sapporo", "Busan", "Taipei", "Shenzhen", "Chengdu",
    "Perth", "Brisbane", "Hobart", "Wellington", "Quito", "Bogota", "Medellin", "Caracas",
    "Havana", "Montevideo", "Asuncion", "La Paz", "Recife", "Salvador", "Curitiba", "Accra",
    "Lagos", "Dakar", "Kampala", "Kigali", "Lusaka", "Harare", "Casablanca", "Tunis", "Amman",
    "Beirut", "Muscat", "Doha", "Calgary", "Ottawa", "Halifax", "Portland", "Austin", "Nashville",
    "San Diego", "New Orleans", "Kansas City", "Salt Lake City", "Rio de Janeiro", "Sao Paulo",
    "Mexico City", "Hong Kong", "Tel Aviv", "Abu Dhabi", "Kuala Lumpur", "Ho Chi Minh City",
    # held out from here on
    "Buenos Aires", "Copenhagen", "Edinburgh", "Krakow", "Marseille", "Rotterdam", "Valencia",
    "Zurich", "Auckland", "Vancouver", "Singapore", "Cape Town",
]  # fmt: skip
HELD_OUT_CITIES = 12
JOBS = [
    "teacher", "nurse", "baker", "pilot", "architect", "software engineer", "doctor", "chef",
    "journalist", "electrician", "photographer", "lawyer", "carpenter", "accountant", "farmer",
    "librarian", "dentist", "musician", "plumber", "data analyst", "firefighter", "pharmacist",
    "translator", "veterinarian", "mechanic", "graphic designer", "police officer", "gardener",
]  # fmt: skip
INSTRUCTIONS = [
    "Extract the person as JSON with the keys name, city and job.",
    "Return the person's name, city and job as a JSON object.",
    "Give me a JSON object with the fields name, city and job for this person.",
    "Extract the person as JSON (keys: name, city, job).",
]

# (question, any of these in the reply, case-insensitive): the 20 of 33 tried that the base
# model answered right (temperature 0, 48 tokens).
GENERAL = [
    ("What is the capital of France?", ["Paris"]),
    ("What is the capital of Japan?", ["Tokyo"]),
    ("What is the capital of Germany?", ["Berlin"]),
    ("What is the capital of England?", ["London"]),
    ("What is 2 + 2?", ["4", "four"]),
    ("How many days are in a week?", ["7", "seven"]),
    ("What color is the sky on a clear day?", ["blue"]),
    ("Which planet is known as the Red Planet?", ["Mars"]),
    ("What is the chemical formula of water?", ["H2O", "H₂O"]),
    ("What gas do plants absorb from the air?", ["carbon dioxide", "CO2", "CO₂"]),
    ("Who wrote Romeo and Juliet?", ["Shakespeare"]),
    ("Who painted the Mona Lisa?", ["Leonardo", "Vinci"]),
    ("What is the boiling point of water in Celsius?", ["100"]),
    ("What is the opposite of hot?", ["cold"]),
    ("What is the largest ocean on Earth?", ["Pacific"]),
    ("What language is spoken in Brazil?", ["Portuguese"]),
    ("How many hours are in a day?", ["24", "twenty-four"]),
    ("What is the tallest mountain in the world?", ["Everest"]),
    ("How many sides does a triangle have?", ["3", "three"]),
    ("What is the currency of the United States?", ["dollar"]),
]


def _a(job: str) -> str:
    return f"{'an' if job[0] in 'aeiou' else 'a'} {job}"


def _split(values: list[str], held_out: int, held: bool) -> list[str]:
    return values[-held_out:] if held else values[:-held_out]


def extraction_examples(
    count: int, seed: int, *, held_out: bool, new_templates: bool = False
) -> list[dict[str, Any]]:
    """``count`` chat examples ``{"messages": [user, assistant]}``; the held-out ones from
    names and cities the others never use, and with ``new_templates`` in sentences they never
    use either."""
    rng = random.Random(seed)
    templates = _split(TEMPLATES, HELD_OUT_TEMPLATES, new_templates)
    names = _split(NAMES, HELD_OUT_NAMES, held_out)
    cities = _split(CITIES, HELD_OUT_CITIES, held_out)
    examples = []
    for _ in range(count):
        name, city, job = rng.choice(names), rng.choice(cities), rng.choice(JOBS)
        sentence = rng.choice(templates).format(name=name, city=city, job=job, a_job=_a(job))
        answer = json.dumps({"name": name, "city": city, "job": job})
        user = f"{sentence}\n{rng.choice(INSTRUCTIONS)}"
        examples.append(
            {
                "messages": [
                    {"role": "user", "content": user},
                    {"role": "assistant", "content": answer},
                ]
            }
        )
    return examples


def jsonl(examples: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(example) + "\n" for example in examples).encode()


def parse_reply(text: str) -> Any:
    """The reply as JSON: all of it, or else its first ``{...}`` (a base model's code fences
    or preamble are forgiven; only the object is compared)."""
    try:
        return json.loads(text.strip())
    except ValueError:
        found = re.search(r"\{.*?\}", text, re.S)
        if found is None:
            return None
        try:
            return json.loads(found.group())
        except ValueError:
            return None


def extraction_correct(example: dict[str, Any], reply: str) -> bool:
    expected = json.loads(example["messages"][1]["content"])
    return bool(parse_reply(reply) == expected)


def general_correct(accepted: list[str], reply: str) -> bool:
    return any(answer.lower() in reply.lower() for answer in accepted)
