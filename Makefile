# Local stack and tests: thin wrappers around dev/stack.sh (its header lists the knobs).
#   make up      the whole system (PostgreSQL, Kafka, services, nginx) on this machine
#   make test    every test (starts what is missing, stops it afterwards)
SHELL := /bin/bash
STACK := ./dev/stack.sh

.PHONY: help up down test logs status infra install clean ci

help:
	@$(STACK) help

up:
	@$(STACK) up

down:
	@$(STACK) down

test:
	@$(STACK) test

logs:
	@$(STACK) logs

status:
	@$(STACK) status

infra:
	@$(STACK) infra

install:
	@$(STACK) install

clean:
	@$(STACK) clean

ci:
	@./.ci/run
