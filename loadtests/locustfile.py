"""Document 002's quiz journey for Locust, the same journey as
`quizload run --scenario journey` (same routes, weights, think time and
login), for people who already use Locust.

    locust -f loadtests/locustfile.py --host http://127.0.0.1:8000 \
        --users 300 --spawn-rate 10 --run-time 2m --headless

Each simulated user logs in once as its own seeded student (student1 ..
student10000, password `quizbench`) and keeps the `qb_session` cookie that
the login sets. Requests are named by route template so Locust's table has
one row per endpoint, like quizload's.

Weights (quizload's defaults): user 2, progress 2, quizzes 4, quiz 4,
attempts 2, submit 1. Think time: 1 to 3 seconds between tasks, or
QUIZLOAD_THINK_MIN to QUIZLOAD_THINK_MAX seconds when these are set (as
`quizload run --tool locust --think A..B` and `quizload experiment --tool
locust` set them from the journey's think time).

Note that Locust rounds response times above 100 ms and its open/closed
model is closed only; quizload's `--rate` runs the open model.
"""

import itertools
import os
import random
import threading

from locust import HttpUser, between, task

SEEDED_STUDENTS = 10_000
SEEDED_QUIZZES = 50
PASSWORD = "quizbench"
THINK_MIN = float(os.environ.get("QUIZLOAD_THINK_MIN", "1"))
THINK_MAX = float(os.environ.get("QUIZLOAD_THINK_MAX", "3"))

_counter = itertools.count()
_counter_lock = threading.Lock()


def next_student():
    """Student number of the next user: 1, 2, ... wrapping at 10000."""
    with _counter_lock:
        i = next(_counter)
    return i % SEEDED_STUDENTS + 1


def answers_for_quiz(quiz):
    """An attempt body for a quiz as returned by GET /api/v1/quizzes/{id}:
    a random choice per choice question, "answer" for short-text ones."""
    answers = []
    for q in quiz.get("questions", []):
        choices = q.get("choices") or []
        if choices:
            answers.append(
                {"question_id": q["id"], "choice_ids": [random.choice(choices)["id"]]}
            )
        else:
            answers.append({"question_id": q["id"], "text": "answer"})
    return {"answers": answers}


class Student(HttpUser):
    wait_time = between(THINK_MIN, THINK_MAX)

    def on_start(self):
        self.answers = {}
        n = next_student()
        with self.client.post(
            "/api/v1/auth/login",
            json={"username": f"student{n}", "password": PASSWORD},
            name="POST /api/v1/auth/login",
            catch_response=True,
        ) as r:
            if r.status_code != 200:
                r.failure(f"login failed with {r.status_code}")

    @task(2)
    def user(self):
        self.client.get("/api/v1/user", name="GET /api/v1/user")

    @task(2)
    def progress(self):
        self.client.get("/api/v1/progress", name="GET /api/v1/progress")

    @task(4)
    def quizzes(self):
        self.client.get("/api/v1/quizzes", name="GET /api/v1/quizzes")

    def fetch_quiz(self, quiz_id):
        r = self.client.get(
            f"/api/v1/quizzes/{quiz_id}", name="GET /api/v1/quizzes/{id}"
        )
        if r.status_code == 200 and quiz_id not in self.answers:
            try:
                self.answers[quiz_id] = answers_for_quiz(r.json())
            except ValueError:
                pass

    @task(4)
    def quiz(self):
        self.fetch_quiz(random.randint(1, SEEDED_QUIZZES))

    @task(2)
    def attempts(self):
        quiz_id = random.randint(1, SEEDED_QUIZZES)
        self.client.get(
            f"/api/v1/quizzes/{quiz_id}/attempts",
            name="GET /api/v1/quizzes/{id}/attempts",
        )

    @task(1)
    def submit(self):
        quiz_id = random.randint(1, SEEDED_QUIZZES)
        if quiz_id not in self.answers:
            # take the quiz: fetch it, then submit right away
            self.fetch_quiz(quiz_id)
        body = self.answers.get(quiz_id)
        if body is not None:
            self.client.post(
                f"/api/v1/quizzes/{quiz_id}/attempts",
                json=body,
                name="POST /api/v1/quizzes/{id}/attempts",
            )
