#!/usr/bin/env python3
"""Writes a staff file of N people to standard output, for import benchmarks.

Usage: bench/gen_staff.py N [SEED] > staff.csv

Deterministic for a given N and seed. People are spread over 200 employers,
with realistic clusters of namesakes (so generated usernames need digits),
one in twenty people working for two employers, and blank usernames (so
every username is generated, the slow path).
"""
import random
import sys

FIRST = ["Jane", "John", "Amir", "Grace", "Tomasz", "Priya", "Olu", "Mary", "David", "Sarah",
         "Mohammed", "Emma", "James", "Fatima", "Liam", "Chloe", "Wei", "Anna", "Kwame", "Zoe"]
LAST = ["Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Khan", "Patel", "Nowak",
        "O'Neill", "Evans", "Thomas", "Roberts", "Walker", "Wright", "Okafor", "Chen", "Ali",
        "Hughes", "Green", "Hall", "Wood", "Clarke", "Jackson", "Lee"]


def main() -> None:
    n = int(sys.argv[1])
    rng = random.Random(int(sys.argv[2]) if len(sys.argv) > 2 else 1)
    out = sys.stdout
    out.write("employer,username,first_name,last_name,date_of_birth,email,employee_number,role\n")
    i = 0
    person = 0
    while i < n:
        person += 1
        first = rng.choice(FIRST)
        last = rng.choice(LAST) + ("" if rng.random() < 0.7 else f"-{rng.choice(LAST)}")
        dob = f"{rng.randint(1950, 2004)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        email = f"{first}.{last}.{person}@nhs.net".lower().replace("'", "")
        employers = [rng.randint(100, 299)]
        if rng.random() < 0.05:
            employers.append(rng.randint(100, 299))
        for e in dict.fromkeys(employers):
            if i >= n:
                break
            out.write(f"{e} Trust {e},,{first},{last},{dob},{email},E{person:07d},staff\n")
            i += 1


if __name__ == "__main__":
    main()
